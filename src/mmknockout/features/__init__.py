"""Item feature matrices: loading and validation, text (MiniLM) and upstream image features.

Feature files are ``.npy`` matrices with one row per item in itemID order. Every loader checks the
row count against the dataset and that all values are finite, and returns float32.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import InputError


def load_feature_matrix(path: str | os.PathLike, n_items: int, name: str = "feature") -> np.ndarray:
    """Load a ``[n_items, dim]`` feature matrix as float32, checking shape and finiteness.

    Raises :class:`InputError` naming the file when it is missing or unreadable, is not 2-d, has a
    row count other than ``n_items``, or holds NaN/inf (the first bad row and column are named;
    values too large for float32 count as inf).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{name} features not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read {name} features as a .npy matrix ({exc})") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: {name} features must be a 2-d matrix [items, dim], found shape {arr.shape}")
    if arr.shape[0] != n_items:
        raise InputError(f"{path}: {name} features have {arr.shape[0]} rows but the dataset has {n_items} "
                         "items (row i must be itemID i)")
    if arr.shape[1] == 0:
        raise InputError(f"{path}: {name} features have zero columns")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{path}: {name} features must be real numbers, found dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    check_finite(out, f"{path}: {name} features")
    return out


def check_finite(matrix: np.ndarray, what: str) -> None:
    """Raise InputError naming the first row/column holding NaN or inf."""
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(f"{what}: non-finite value {matrix[row, col]} at row {row} (itemID {row}), column {col}"
                         f"; {int(bad.any(axis=1).sum())} row(s) affected")


def load_features(paths: Mapping[str, str | os.PathLike | None], n_items: int) -> dict[str, np.ndarray | None]:
    """Load several modalities, e.g. ``{"text": ".../text_feat.npy", "image": None}``.

    A ``None`` path gives ``None`` (the modality is absent, as a missing file in MMRec).
    """
    return {name: None if p is None else load_feature_matrix(p, n_items, name) for name, p in paths.items()}
