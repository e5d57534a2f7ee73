"""Item feature matrices: loading and validation, text (MiniLM) and upstream image features.

Feature files are ``.npy`` matrices with one row per item in itemID order. Every loader checks the
row count against the dataset and that all values are finite, and returns float32. The generic
reader lives in :mod:`mmknockout.arrays` (below the data stage) and is re-exported here.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..arrays import check_finite, load_feature_matrix

__all__ = ["check_finite", "load_feature_matrix", "load_features"]


def load_features(paths: Mapping[str, str | os.PathLike | None], n_items: int) -> dict[str, np.ndarray | None]:
    """Load several modalities, e.g. ``{"text": ".../text_feat.npy", "image": None}``.

    A ``None`` path gives ``None`` (the modality is absent, as a missing file in MMRec).
    """
    return {name: None if p is None else load_feature_matrix(p, n_items, name) for name, p in paths.items()}
