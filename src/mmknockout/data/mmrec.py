"""Import a dataset already in MMRec layout (e.g. the toolbox's published Baby/Sports/Clothing).

The folder holds ``<name>.inter`` (tab-separated ``userID itemID rating timestamp x_label``),
``image_feat.npy``, ``text_feat.npy`` and optionally ``user_graph_dict.npy`` (a pickled dict
``{user: [neighbour_ids, counts]}``) and the mapping files ``u_id_mapping.csv`` / ``i_id_mapping.csv``.
The given split is kept as it is (no k-core, no re-split); ids, labels and feature shapes are
validated, and every split part must be non-empty. ``user_graph_dict.npy`` is read with a
data-only unpickler (:func:`mmknockout.arrays.load_pickled_npy`): a crafted file cannot run code.

The item count is the feature files' row count (row i is itemID i), so items without
interactions are kept and every model ranks them; every itemID must be below it. Repeated
(userID, itemID) rows, within a split part or across parts, are handled by the dataset's
``deduplicate`` setting (:mod:`.duplicates`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..arrays import load_feature_matrix, load_pickled_npy, npy_header
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
from .duplicates import apply_policy, find_repeats
from .graphs import save_graph
from .preprocess import read_mapping, write_inter

FEATURE_FILES = {"text": "text_feat.npy", "image": "image_feat.npy"}
SPLIT_NAMES = {TRAIN: "train", VALID: "validation", TEST: "test"}


def read_inter(path: str | os.PathLike, n_items: int | None = None, counted_by: str = "") -> pd.DataFrame:
    """Read and validate an MMRec ``.inter`` file; rating/timestamp default to 1.0/0 when absent.

    With ``n_items`` the item ids need only be below it (see :func:`validate_ids`)."""
    path = Path(path)
    df = read_inter_frame(path)
    if df.empty:
        raise InputError(f"{path}: no interactions")
    validate_ids(df, path, n_items, counted_by)
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


def item_count(folder: Path) -> tuple[int, dict[str, Path]]:
    """The number of items (rows of the feature files, which must agree) and the feature files present."""
    files = {m: folder / f for m, f in FEATURE_FILES.items() if exists(folder / f)}
    if not files:
        raise InputError(f"{folder}: neither {FEATURE_FILES['text']} nor {FEATURE_FILES['image']} found")
    rows = {m: npy_header(p, f"{m} features")[0] for m, p in files.items()}
    for m, shape in rows.items():
        if len(shape) != 2:
            raise InputError(f"{files[m]}: {m} features must be a 2-d matrix [items, dim], found shape {shape}")
    counts = {m: int(shape[0]) for m, shape in rows.items()}
    if len(set(counts.values())) > 1:
        raise InputError(
            f"{folder}: the feature files disagree on the number of items: "
            + ", ".join(f"{files[m].name} has {n} rows" for m, n in counts.items())
        )
    return next(iter(counts.values())), files


def deduplicate_split(df: pd.DataFrame, path: Path, policy: str) -> tuple[pd.DataFrame, dict]:
    """Apply the ``deduplicate`` policy to repeated (userID, itemID) rows of an ``.inter`` frame.

    The earliest row of a pair is the one with the smallest timestamp, then the first in the file,
    whatever its split part; the report counts the repeats of a pair in another split part."""
    repeats = find_repeats(df["userID"].to_numpy(), df["itemID"].to_numpy(), df["timestamp"].to_numpy())
    labels, users, items = (df[c].to_numpy() for c in ("x_label", "userID", "itemID"))
    across = int((labels[repeats.rows] != labels[repeats.kept]).sum())

    def describe(row: int, kept: int) -> str:
        return (
            f"line {row + 2} (userID {users[row]}, itemID {items[row]}, {SPLIT_NAMES[labels[row]]}) "
            f"repeats line {kept + 2} ({SPLIT_NAMES[labels[kept]]})"
        )

    detail = f", {across} of them in another split part than the pair's earliest row" if across else ""
    out, report = apply_policy(df, repeats, policy, str(path), describe, detail)
    report["across_splits"] = across
    report["dropped_by_split"] = {
        SPLIT_NAMES[x]: int(n)
        for x, n in enumerate(np.bincount(labels[repeats.rows], minlength=3) if policy == "first" else [0, 0, 0])
    }
    return out, report


def import_mmrec(folder: str | os.PathLike, name: str, out_dir: str | os.PathLike, deduplicate: str = "error") -> dict:
    """Import an MMRec dataset folder into ``out_dir``; returns the stats written to ``stats.json``.

    Writes ``{name}.inter`` (stable-sorted by userID, split kept, repeats handled by
    ``deduplicate``), ``stats.json``, ``features/text_provided.npy`` and
    ``features/image_provided.npy`` (float32, for each feature file present),
    ``user_graph.npz`` when ``user_graph_dict.npy`` exists, and the two mapping files (copied when
    present, otherwise identity mappings). The item count is the feature files' row count.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise InputError(f"MMRec dataset folder not found: {folder}")
    n_items, feature_files = item_count(folder)
    inter = folder / f"{name}.inter"
    names = " and ".join(p.name for p in feature_files.values())
    df = read_inter(inter, n_items, f"the rows of {names}; row i holds the features of itemID i")
    df, duplicates = deduplicate_split(df, inter, deduplicate)
    check_split_parts(df, inter)
    n_users = int(df["userID"].max()) + 1
    features = {m: load_feature_matrix(p, n_items, m) for m, p in feature_files.items()}

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
                raise InputError(f"{p}: {len(m)} rows but the dataset has {n} {kind}s")
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
        "duplicates": duplicates,
    }
    write_json(out_dir / "stats.json", stats)
    return stats


def import_mmrec_step(*, folder: str, inter: str, stats: str, text: str, image: str, deduplicate: str) -> dict:
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
    return import_mmrec(folder, name, out_dir, deduplicate)
