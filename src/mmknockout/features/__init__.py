"""Item feature matrices: loading and validation, text (MiniLM) and upstream image features.

Feature files are ``.npy`` matrices with one row per item in itemID order. Every loader checks the
row count against the dataset and that all values are finite, and returns float32. The generic
reader lives in :mod:`mmknockout.arrays` (below the data stage) and is re-exported here.
"""

from __future__ import annotations

from ..arrays import check_finite, load_feature_matrix

__all__ = ["check_finite", "load_feature_matrix"]
