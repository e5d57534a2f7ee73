"""Concatenated features: other encoders' feature matrices side by side, one vector per item.

Zhang (2025) feeds Dual (VLM2Vec visual + textual) and Original (ResNet-50 + BERT) as single
vectors; a ``concat`` encoder builds them from the parts' ``.npy`` files in the configured order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..io import require_file, write_json, write_npy


def read_part(path: str) -> np.ndarray:
    """One part's ``[n_items, dim]`` feature matrix as float32."""
    require_file(path, "features")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read features {path}: {exc}") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise InputError(f"features {path}: expected a numeric [items, dim] matrix, got shape {matrix.shape}")
    return matrix.astype(np.float32, copy=False)


def concat(matrices: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Columns of ``matrices`` in order; every part must have the same number of rows (items)."""
    rows = {name: m.shape[0] for name, m in zip(names, matrices, strict=True)}
    if len(set(rows.values())) != 1:
        raise InputError(f"concat parts differ in their number of items: {rows}")
    return np.concatenate(matrices, axis=1)


def concat_step(*, parts: list[str], features: str, sidecar: str) -> None:
    """Workflow step: write the parts' features side by side and a sidecar naming each part's columns."""
    matrices = [read_part(p) for p in parts]
    matrix = concat(matrices, parts)
    bounds = np.cumsum([0] + [m.shape[1] for m in matrices])
    write_npy(features, matrix)
    write_json(
        sidecar,
        {
            "kind": "concat",
            "parts": [
                {"file": p, "columns": [int(a), int(b)]} for p, a, b in zip(parts, bounds[:-1], bounds[1:], strict=True)
            ],
            "n_items": int(matrix.shape[0]),
            "dim": int(matrix.shape[1]),
            "dtype": str(matrix.dtype),
        },
    )
