"""Import a dataset already in MMRec layout (e.g. the toolbox's published Baby/Sports/Clothing).

The folder holds ``<name>.inter`` (tab-separated ``userID itemID rating timestamp x_label``),
``image_feat.npy``, ``text_feat.npy`` and optionally ``user_graph_dict.npy`` (a pickled dict
``{user: [neighbour_ids, counts]}``) and the mapping files ``u_id_mapping.csv`` / ``i_id_mapping.csv``.
The given split is kept as it is (no k-core, no re-split); ids, labels and feature shapes are
validated, and every split part must be non-empty. ``user_graph_dict.npy`` is read with a
data-only unpickler (:func:`mmknockout.arrays.load_pickled_npy`): a crafted file cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..arrays import load_feature_matrix, load_pickled_npy
from ..errors import InputError
from ..io import exists, write_json, write_npy, write_text
from .dataset import (
    INTER_COLUMNS,
    TEST,
    TRAIN,
    VALID,
    NeighbourGraph,
    SplitData,
    read_inter_frame,
    validate_ids,
)
from .graphs import save_graph
from .preprocess import read_mapping, write_inter

FEATURE_FILES = {"text": "text_feat.npy", "image": "image_feat.npy"}
SPLIT_NAMES = {TRAIN: "train", VALID: "validation", TEST: "test"}


def read_inter(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an MMRec ``.inter`` file; rating/timestamp default to 1.0/0 when absent."""
    path = Path(path)
    df = read_inter_frame(path)
    if df.empty:
        raise InputError(f"{path}: no interactions")
    validate_ids(df, path)
    if "rating" not in df.columns:
        df["rating"] = 1.0
    if "timestamp" not in df.columns:
        df["timestamp"] = 0
    for col in ("rating", "timestamp"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any():
            row = int(np.flatnonzero(vals.isna().to_numpy())[0]) + 2
            raise InputError(f"{path}: line {row}: {col} {df[col].iloc[row - 2]!r} is not a number")
        df[col] = vals
    df["rating"] = df["rating"].astype("float64")
    df["timestamp"] = df["timestamp"].round().astype("int64")
    return df[INTER_COLUMNS]


def user_graph_from_dict(path: str | os.PathLike, n_users: int) -> NeighbourGraph:
    """Convert MMRec's ``user_graph_dict.npy`` into a NeighbourGraph (ids padded with -1).

    The pickle is read with the data-only unpickler; a file referencing anything but numpy arrays
    and plain containers is refused with an InputError naming it, without running its code.
    """
    path = Path(path)
    graph = load_pickled_npy(path, "user graph dict").item()
    if not isinstance(graph, dict):
        raise InputError(f"{path}: expected a pickled dict {{user: [neighbour_ids, counts]}}")
    lists = []
    for user, value in graph.items():
        try:
            u = int(user)
            nb, cnt = value
            nb = np.asarray(nb, dtype=np.int64).ravel()
            cnt = np.asarray(cnt, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: entry for user {user!r} must be [neighbour_ids, counts] ({exc})") from None
        if not 0 <= u < n_users:
            raise InputError(f"{path}: user {user!r} outside 0..{n_users - 1}")
        if nb.size != cnt.size:
            raise InputError(f"{path}: user {u}: {nb.size} neighbour ids but {cnt.size} counts")
        if nb.size and (nb.min() < 0 or nb.max() >= n_users):
            raise InputError(f"{path}: user {u}: neighbour id outside 0..{n_users - 1}")
        if not np.isfinite(cnt).all():
            raise InputError(f"{path}: user {u}: non-finite count")
        lists.append((u, nb, cnt))
    k = max((nb.size for _, nb, _ in lists), default=0)
    ids = np.full((n_users, k), -1, dtype=np.int64)
    weights = np.zeros((n_users, k), dtype=np.float32)
    for u, nb, cnt in lists:  # one row per user; the dict itself is a Python object
        ids[u, : nb.size] = nb
        weights[u, : nb.size] = cnt
    return NeighbourGraph(ids, weights)


def check_split_parts(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Refuse an ``.inter`` frame whose train, validation or test part (x_label 0/1/2) is empty."""
    counts = np.bincount(df["x_label"].to_numpy(), minlength=3)
    for label, name in SPLIT_NAMES.items():
        if counts[label] == 0:
            raise InputError(
                f"{path}: the {name} split (x_label {label}) is empty; every part of the split "
                "needs interactions, or every training run would fail"
            )


def import_mmrec(folder: str | os.PathLike, name: str, out_dir: str | os.PathLike) -> dict:
    """Import an MMRec dataset folder into ``out_dir``; returns the stats written to ``stats.json``.

    Writes ``{name}.inter`` (stable-sorted by userID, split kept), ``stats.json``,
    ``features/text_provided.npy`` and ``features/image_provided.npy`` (float32, for each feature
    file present), ``user_graph.npz`` when ``user_graph_dict.npy`` exists, and the two mapping
    files (copied when present, otherwise identity mappings).
    """
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise InputError(f"MMRec dataset folder not found: {folder}")
    inter = folder / f"{name}.inter"
    df = read_inter(inter)
    check_split_parts(df, inter)
    n_users, n_items = int(df["userID"].max()) + 1, int(df["itemID"].max()) + 1

    features = {}
    for modality, fname in FEATURE_FILES.items():
        p = folder / fname
        if exists(p):
            features[modality] = load_feature_matrix(p, n_items, modality)
    if not features:
        raise InputError(f"{folder}: neither {FEATURE_FILES['text']} nor {FEATURE_FILES['image']} found")

    mappings = {}
    for kind, fname, cols in (
        ("user", "u_id_mapping.csv", ("user_id", "userID")),
        ("item", "i_id_mapping.csv", ("asin", "itemID")),
    ):
        n = n_users if kind == "user" else n_items
        p = folder / fname
        if exists(p):
            m = read_mapping(p, kind)
            if len(m) != n:
                raise InputError(f"{p}: {len(m)} rows but the .inter file has {n} {kind}s")
            mappings[kind] = "provided"
        else:
            m = pd.DataFrame({cols[0]: np.arange(n), cols[1]: np.arange(n)})
            mappings[kind] = "identity"
        write_text(out_dir / fname, m.to_csv(sep="\t", index=False))

    graph = None
    graph_path = folder / "user_graph_dict.npy"
    if exists(graph_path):
        graph = user_graph_from_dict(graph_path, n_users)

    order = np.argsort(df["userID"].to_numpy(), kind="stable")
    write_inter(out_dir / f"{name}.inter", df.iloc[order])
    for modality, matrix in features.items():
        write_npy(out_dir / "features" / f"{modality}_provided.npy", matrix)
    if graph is not None:
        save_graph(graph, out_dir / "user_graph.npz")

    data = SplitData(n_users, n_items, df["userID"], df["itemID"], df["x_label"], name=name)
    stats = {
        **data.stats(),
        "source": "mmrec",
        "source_folder": str(folder),
        "feature_dims": {m: int(x.shape[1]) for m, x in features.items()},
        "mappings": mappings,
        "user_graph": None if graph is None else {"k": int(graph.ids.shape[1])},
    }
    write_json(out_dir / "stats.json", stats)
    return stats


def import_mmrec_step(*, folder: str, inter: str, stats: str, text: str, image: str) -> dict:
    """Workflow step: :func:`import_mmrec` into the folder of ``inter``, whose outputs the rule names."""
    out_dir, name = Path(inter).parent, Path(inter).stem
    layout = {
        inter: out_dir / f"{name}.inter",
        stats: out_dir / "stats.json",
        text: out_dir / "features" / "text_provided.npy",
        image: out_dir / "features" / "image_provided.npy",
    }
    wrong = [str(got) for got, expected in layout.items() if Path(got) != expected]
    if wrong:
        raise InputError(f"import_mmrec writes {sorted(map(str, layout.values()))}; the rule names {wrong}")
    return import_mmrec(folder, name, out_dir)
