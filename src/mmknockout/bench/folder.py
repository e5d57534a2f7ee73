"""An MMRec-layout folder read the way the toolbox reads it, for the benchmark and the parity check.

The toolbox counts ``max id + 1`` users and items, so an item that no interaction names is still
ranked and sampled; here the item count is the feature files' row count (which the toolbox's
models index), every id must lie below it. The user graph is the folder's
``user_graph_dict.npy`` when present (as in the toolbox), otherwise it and the item graph are
built from the training interactions with the workflow's default settings; likewise the item
graph from ``item_graph_dict_2.npy`` (DAMRS's input in the toolbox) when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..arrays import load_feature_matrix, npy_header
from ..config import SCHEMA
from ..data import graphs
from ..data.dataset import SplitData, read_inter_frame
from ..data.mmrec import FEATURE_FILES, check_split_parts, user_graph_from_dict
from ..errors import InputError

#: the item-item graph file the toolbox's DAMRS reads (``item_graph_dict_file``)
ITEM_GRAPH_DICT = "item_graph_dict_2.npy"


def inter_file(folder: str | Path) -> Path:
    """The folder's single ``<name>.inter`` file (its stem is the dataset's name)."""
    found = sorted(Path(folder).glob("*.inter"))
    if len(found) != 1:
        raise InputError(f"{folder}: expected exactly one .inter file, found {[p.name for p in found]}")
    return found[0]


def preprocessing_default(key: str) -> int:
    """A ``preprocessing`` default of the config schema (the graphs' settings)."""
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    return schema["properties"]["preprocessing"]["properties"][key]["default"]


def read_folder(folder: str | Path) -> tuple[SplitData, dict[str, np.ndarray]]:
    """The split (with both auxiliary graphs) and the float32 feature matrices of an MMRec folder."""
    folder = Path(folder)
    path = inter_file(folder)
    df = read_inter_frame(path)
    check_split_parts(df, path)
    present = {m: folder / f for m, f in FEATURE_FILES.items() if (folder / f).is_file()}
    if not present:
        raise InputError(f"{folder}: neither {FEATURE_FILES['text']} nor {FEATURE_FILES['image']} found")
    n_items = npy_header(next(iter(present.values())), "feature matrix")[0][0]
    for col, bound in (("userID", None), ("itemID", n_items)):
        ids = df[col].to_numpy()
        bad = np.flatnonzero((ids < 0) | (ids >= bound if bound is not None else False))
        if bad.size:
            where = "negative" if bound is None else f"not below the {bound} feature rows"
            raise InputError(f"{path}: line {int(bad[0]) + 2}: {col} {ids[bad[0]]} is {where}")
    n_users = int(df["userID"].max()) + 1
    data = SplitData(n_users, n_items, df["userID"], df["itemID"], df["x_label"], name=path.stem)
    features = {m: np.asarray(load_feature_matrix(p, n_items, m), dtype=np.float32) for m, p in present.items()}
    graph_dict = folder / "user_graph_dict.npy"
    data.user_graph = (
        user_graph_from_dict(graph_dict, n_users)
        if graph_dict.is_file()
        else graphs.user_graph(data, preprocessing_default("user_graph_k"))
    )
    item_dict = folder / ITEM_GRAPH_DICT
    data.item_graph = (
        user_graph_from_dict(item_dict, n_items)  # the same {id: [neighbour_ids, counts]} layout
        if item_dict.is_file()
        else graphs.item_graph(
            data, preprocessing_default("item_graph_k"), preprocessing_default("item_graph_min_count")
        )
    )
    return data, features
