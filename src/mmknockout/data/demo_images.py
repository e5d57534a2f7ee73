"""Synthetic product images of the demo dataset: one small PNG per item, drawn with PIL.

Each product type has its own colour and shape (:data:`TYPE_LOOKS`, by type index); every item
varies slightly (position, size, rotation, shade, background), drawn from a generator seeded by
``(seed, item index)`` alone, so the images never disturb the random draws of the rest of the demo
and the same arguments give the same bytes (PNG, no metadata, fixed compression).

The demo metadata points at them with relative ``file:`` URLs (``file:resources/demo/images/<name>.png``,
no ``//``): :func:`mmknockout.data.images.download_images` resolves such a URL against the repository
root, and the workflow fetches ``file:`` URLs only for registry datasets that list ``file`` in their
``image_schemes`` (the bundled demo).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..io import atomic_path

#: side of the square images in pixels
SIZE = 64
#: (shape, RGB colour) per product type index
TYPE_LOOKS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("disc", (220, 60, 50)),
    ("square", (40, 110, 200)),
    ("triangle", (40, 160, 70)),
    ("diamond", (230, 170, 30)),
    ("cross", (150, 60, 170)),
    ("ring", (30, 170, 170)),
    ("hexagon", (200, 90, 150)),
    ("star", (120, 80, 40)),
    ("bar", (90, 90, 90)),
    ("pentagon", (240, 120, 40)),
    ("column", (20, 60, 110)),
    ("frame", (130, 170, 40)),
)


def _polygon(n: int, cx: float, cy: float, r: float, angle: float, inner: float | None = None) -> list[tuple]:
    """A regular ``n``-gon (or, with ``inner``, an ``n``-pointed star) around (cx, cy)."""
    points = []
    steps = 2 * n if inner else n
    for k in range(steps):
        radius = r * inner if inner and k % 2 else r
        a = angle + 2 * math.pi * k / steps
        points.append((cx + radius * math.sin(a), cy - radius * math.cos(a)))
    return points


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float, fill: tuple) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "disc":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(3, int(r / 3)))
    elif shape == "frame":
        draw.rectangle(box, outline=fill, width=max(3, int(r / 3)))
    elif shape == "bar":
        draw.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=fill)
    elif shape == "column":
        draw.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=fill)
    elif shape == "cross":
        draw.rectangle((cx - r, cy - r / 4, cx + r, cy + r / 4), fill=fill)
        draw.rectangle((cx - r / 4, cy - r, cx + r / 4, cy + r), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(5, cx, cy, r, angle, inner=0.45), fill=fill)
    else:
        sides = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6, "pentagon": 5}[shape]
        offset = math.pi / 4 if shape == "square" else 0.0
        draw.polygon(_polygon(sides, cx, cy, r, angle + offset), fill=fill)


def product_image(product_type: int, rng: np.random.Generator) -> bytes:
    """The PNG bytes of one item of ``product_type``, its small variations drawn from ``rng``."""
    shape, colour = TYPE_LOOKS[product_type % len(TYPE_LOOKS)]
    background = tuple(int(v) for v in 235 + rng.integers(-12, 13, size=3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    shade = rng.integers(-25, 26)
    fill = tuple(int(np.clip(c + shade, 0, 255)) for c in colour)
    cx, cy = SIZE / 2 + rng.uniform(-5, 5, size=2)
    _draw(ImageDraw.Draw(image), shape, cx, cy, SIZE * rng.uniform(0.28, 0.38), rng.uniform(-0.3, 0.3), fill)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def write_demo_images(out_dir: str | os.PathLike, names: Sequence[str], types: Sequence[int], seed: int) -> None:
    """Write ``out_dir/<name>.png`` for item ``k`` of type ``types[k]``, seeded by ``(seed, k)``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, product_type) in enumerate(zip(names, types, strict=True)):
        with atomic_path(out_dir / f"{name}.png", suffix=".png") as tmp:
            tmp.write_bytes(product_image(int(product_type), np.random.default_rng([seed, k])))
