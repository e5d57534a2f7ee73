"""Upstream image features: the 4096-d Caffe FC7 vectors of the 2014 ``image_features_<Cat>.b``.

Used as-is (no normalisation); items without a record get the mean of the matched rows and are
listed in ``missed_img_itemIDs.csv`` (PROTOCOL 1.5).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..data.amazon import asin_strings, read_image_features
from ..errors import InputError
from ..io import write_text


def upstream_features(
    b_path: str | os.PathLike, i_id_mapping: pd.DataFrame, dim: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_items, dim] float32, missing itemIDs)`` from a ``.b`` file and ``i_id_mapping``.

    ``i_id_mapping`` is the frame of ``i_id_mapping.csv`` (columns ``asin``, ``itemID``); read it
    with :func:`mmknockout.data.preprocess.read_mapping`.
    """
    if not {"asin", "itemID"} <= set(i_id_mapping.columns):
        raise InputError(f"item mapping must have columns asin, itemID; found {list(i_id_mapping.columns)}")
    asin_to_item = dict(zip(asin_strings(i_id_mapping["asin"]), i_id_mapping["itemID"].astype(np.int64), strict=True))
    return read_image_features(b_path, asin_to_item, n_items=len(i_id_mapping), dim=dim)


def write_missing(path: str | os.PathLike, ids) -> None:
    """Write item ids one per line (upstream ``missed_img_itemIDs.csv``; empty file when none)."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    write_text(path, "".join(f"{i}\n" for i in ids))


def image_features(*, features_file: str, item_map: str, features: str, missing: str, dim: int) -> None:
    """Workflow step: the upstream ``.b`` vectors per item (mean fill) and the list of items without one."""
    from ..data.preprocess import read_mapping
    from ..io import write_npy

    matrix, missing_ids = upstream_features(features_file, read_mapping(item_map, "item"), dim=dim)
    write_npy(features, matrix)
    write_missing(missing, missing_ids)
