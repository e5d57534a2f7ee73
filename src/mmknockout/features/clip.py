"""CLIP item encoder: the projected text or image embedding of a ``transformers`` ``CLIPModel``.

Spec keys: ``model`` (hub name or local directory for ``from_pretrained``), ``tower`` (``text``:
``get_text_features`` on :attr:`Item.text`; ``image``: ``get_image_features`` on the item's image),
``batch_size`` (default 32), ``max_length`` (text tokens, at most and by default the model's
``max_position_embeddings``, 77 for real CLIP; longer texts are truncated, keeping the end token),
``normalize`` (L2-normalise the rows; default false). Text batches are padded to their longest
text; CLIP pools at the end token under a causal mask, so padding does not change a vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .vl import Item

TOWERS = ("text", "image")


def _open_rgb(item: Item):
    from PIL import Image

    if item.image is None:
        raise InputError(f"item {item.item_id} has no image for the CLIP image tower")
    try:
        with Image.open(item.image) as img:
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file
        raise InputError(f"cannot read image {item.image} of item {item.item_id}: {exc}") from None


class ClipEncoder:
    """``ClipEncoder(spec, device)``: one CLIP tower as an :class:`~mmknockout.features.vl.ItemEncoder`."""

    def __init__(self, spec: Mapping[str, Any], device: str) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.tower = spec.get("tower")
        if self.tower not in TOWERS:
            raise InputError(f"clip encoder: tower must be one of {TOWERS}, got {self.tower!r}")
        if "model" not in spec:
            raise InputError("clip encoder: spec has no 'model' (hub name or local directory)")
        self.name = str(spec["model"])
        self.batch_size = int(spec.get("batch_size", 32))
        self.normalize = bool(spec.get("normalize", False))
        self.device = device
        self.needs_images = self.tower == "image"
        try:
            self.model = CLIPModel.from_pretrained(self.name).to(device).eval()
            if self.needs_images:
                self.processor = AutoImageProcessor.from_pretrained(self.name)
            else:
                self.processor = AutoTokenizer.from_pretrained(self.name)
        except OSError as exc:
            raise InputError(f"cannot load CLIP model {self.name!r}: {exc}") from None
        positions = self.model.config.text_config.max_position_embeddings
        self.max_length = int(spec.get("max_length", positions))
        if not 2 <= self.max_length <= positions:
            raise InputError(f"clip encoder: max_length must lie in [2, {positions}], got {self.max_length}")

    def _batch(self, items: Sequence[Item]):
        """Projected features of one batch (a torch tensor)."""
        if self.needs_images:
            pixels = self.processor(images=[_open_rgb(it) for it in items], return_tensors="pt")["pixel_values"]
            return self.model.get_image_features(pixel_values=pixels.to(self.device)).pooler_output
        tokens = self.processor(
            [it.text for it in items], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output

    def encode(self, items: Sequence[Item]) -> np.ndarray:
        """Float32 ``[len(items), projection_dim]`` features, in batches of ``batch_size``."""
        import torch

        parts = []
        with torch.no_grad():
            for start in range(0, len(items), self.batch_size):
                out = self._batch(items[start : start + self.batch_size]).float()
                if self.normalize:
                    out = torch.nn.functional.normalize(out, dim=-1)
                parts.append(out.cpu().numpy())
        dim = self.model.config.projection_dim
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, dim), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """Model, revision, tower, dtype, pooling, truncation, normalisation and input."""
        config = self.model.config
        return {
            "model": self.name,
            "revision": getattr(config, "_commit_hash", None),
            "architecture": "CLIPModel",
            "tower": self.tower,
            "input": "image" if self.needs_images else "item text",
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "pooling": "image: class token, visual_projection"
            if self.needs_images
            else "text: end token, text_projection",
            "max_length": None if self.needs_images else self.max_length,
            "truncation": None if self.needs_images else f"longer texts cut to {self.max_length} tokens",
            "normalize": self.normalize,
            "dim": config.projection_dim,
        }
