"""Batched, resumable feature extraction with an :class:`~mmknockout.features.vl.ItemEncoder`.

The items an encoder can read (all of them, or only those with a decodable image when the encoder
``needs_images``) are split into chunks of ``chunk_size`` (spec key, default 256). Each encoded
chunk is saved atomically as ``.<features name>.chunks/<index>-<key>.npy`` beside the output, where
``key`` hashes the encoder spec and the chunk's items (id, title, category, text, image path): a
killed job resumes from the finished chunks, and a changed spec or item never reuses a stale one.
Rows of items that were not encoded are the mean of the encoded rows. The final matrix is written
atomically, then the chunk folder is removed. An encoder that generates text before pooling
(``last_texts`` after each ``encode``, the LVLM) has its texts kept per chunk beside the rows and
returned in item order. Each chunk is encoded after
``torch.manual_seed(index)``, so a resumed run equals an uninterrupted one even for an encoder
that samples.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..io import write_npy, write_text

if TYPE_CHECKING:  # the interface's types; vl.encode_step imports this module
    from .vl import Item, ItemEncoder

DEFAULT_CHUNK_SIZE = 256


def chunk_folder(features: str | Path) -> Path:
    """The hidden folder of finished chunks beside ``features``."""
    features = Path(features)
    return features.parent / f".{features.name}.chunks"


def usable_image(path: Path | None) -> bool:
    """True when ``path`` is an image file PIL can identify and verify."""
    if path is None:
        return False
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception:  # noqa: BLE001 - any unreadable or corrupt file counts as missing
        return False
    return True


def chunk_key(spec: Mapping[str, Any], items: Sequence[Item]) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of the spec and the chunk's items (all fields)."""
    rows = [[it.item_id, it.title, it.category, it.text, None if it.image is None else str(it.image)] for it in items]
    blob = json.dumps({"spec": spec, "items": rows}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_chunk(path: Path, n_rows: int) -> np.ndarray | None:
    """A finished chunk, or None when absent or not a float32 ``[n_rows, dim]`` array."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return arr if arr.dtype == np.float32 and arr.ndim == 2 and arr.shape[0] == n_rows else None


def _encode_chunk(encoder: ItemEncoder, items: Sequence[Item], index: int) -> np.ndarray:
    import torch

    torch.manual_seed(index)
    out = np.asarray(encoder.encode(items))
    if out.ndim != 2 or out.shape[0] != len(items):
        raise InputError(f"encoder returned shape {out.shape} for {len(items)} items; expected [{len(items)}, dim]")
    if not np.isfinite(out).all():
        raise InputError(f"encoder produced non-finite values in chunk {index} (items {items[0].item_id}..)")
    return out.astype(np.float32, copy=False)


def _load_texts(path: Path, n_rows: int) -> list[str] | None:
    """The generated texts of a finished chunk, or None when absent or not ``n_rows`` strings."""
    try:
        texts = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return (
        texts if isinstance(texts, list) and len(texts) == n_rows and all(isinstance(t, str) for t in texts) else None
    )


def _chunks(encoder: ItemEncoder, items: Sequence[Item], folder: Path, spec: Mapping, size: int, progress: bool):
    """Yield every chunk's (rows, texts or None), encoding only the chunks not already saved in ``folder``."""
    from tqdm import tqdm

    starts = range(0, len(items), size)
    names = [f"{i:05d}-{chunk_key(spec, items[s : s + size])}.npy" for i, s in enumerate(starts)]
    folder.mkdir(parents=True, exist_ok=True)
    keep = set(names) | {n.replace(".npy", ".json") for n in names}
    for stale in folder.iterdir():
        if stale.name not in keep:
            stale.unlink()
    generates = hasattr(encoder, "last_texts")
    jobs = list(zip(starts, names, strict=True))
    for index, (start, name) in enumerate(tqdm(jobs, disable=not progress, desc=f"{folder.name} chunks", unit="chunk")):
        batch = items[start : start + size]
        rows = _load_chunk(folder / name, len(batch))
        texts_file = folder / name.replace(".npy", ".json")
        texts = _load_texts(texts_file, len(batch)) if generates else None
        if rows is None or (generates and texts is None):
            rows = _encode_chunk(encoder, batch, index)
            if generates:
                texts = list(encoder.last_texts)
                write_text(texts_file, json.dumps(texts))
            write_npy(folder / name, rows)
        yield rows, texts


def extract(
    encoder: ItemEncoder,
    items: Sequence[Item],
    features: str | Path,
    *,
    spec: Mapping[str, Any],
    show_progress: bool = True,
) -> tuple[np.ndarray, list[int], dict[int, str] | None]:
    """Encode ``items`` into ``features`` (float32 ``.npy``, row i for ``items[i]``); resumable.

    ``spec`` is the encoder spec (its ``chunk_size`` sets the chunk length). Returns the matrix, the
    sorted item ids that were mean-filled (no usable image for an encoder that needs one) and, for an
    encoder that generates text, each encoded item's text by item id (else None).
    """
    size = int(spec.get("chunk_size", DEFAULT_CHUNK_SIZE))
    if size < 1:
        raise InputError(f"encoder chunk_size must be a positive integer, got {spec.get('chunk_size')!r}")
    usable = [not encoder.needs_images or usable_image(it.image) for it in items]
    todo = [it for it, ok in zip(items, usable, strict=True) if ok]
    if not todo:
        raise InputError(f"no item can be encoded for {features}: none of the {len(items)} items has a readable image")
    folder = chunk_folder(features)
    chunks = list(_chunks(encoder, todo, folder, spec, size, show_progress))
    parts = [rows for rows, _ in chunks]
    texts = None
    if chunks and chunks[0][1] is not None:
        flat = [t for _, chunk_texts in chunks for t in chunk_texts]
        texts = {it.item_id: t for it, t in zip(todo, flat, strict=True)}
    dims = sorted({p.shape[1] for p in parts})
    if len(dims) > 1:
        raise InputError(f"encoder returned chunks of different widths {dims} for {features}")
    encoded = np.concatenate(parts, axis=0)
    matrix = np.empty((len(items), encoded.shape[1]), dtype=np.float32)
    mask = np.asarray(usable, dtype=bool)
    matrix[mask] = encoded
    matrix[~mask] = encoded.mean(axis=0, dtype=np.float64).astype(np.float32)
    write_npy(features, matrix)
    shutil.rmtree(folder, ignore_errors=True)
    return matrix, sorted(it.item_id for it, ok in zip(items, usable, strict=True) if not ok), texts
