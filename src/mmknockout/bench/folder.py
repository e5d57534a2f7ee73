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

from ..arrays import load_feature_matrix
from ..config import SCHEMA
from ..data import graphs
from ..data.dataset import SplitData
from ..data.mmrec import check_split_parts, item_count, read_inter, user_graph_from_dict
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
    """The split (with both auxiliary graphs) and the float32 feature matrices of an MMRec folder.

    Repeated (user, item) rows are kept, as the toolbox keeps them."""
    folder = Path(folder)
    path = inter_file(folder)
    n_items, present = item_count(folder)
    df = read_inter(path, n_items, "the feature rows")
    check_split_parts(df, path)
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
