"""The leave-one-out sequential split of next-item generation (TIGER, MGR).

From the 5-core interactions of the main split (``{dataset}.inter``; its x_label is ignored): each
user's interactions in chronological order, ties on the timestamp broken by the row order of the
``.inter`` file (a stable sort), the last item is the test target, the second last the validation
target and the rest the training history. Optionally items without an image (no ``imUrl`` in the
metadata) are removed first and the k-core filter is applied again, as MGR does.

The split is an ``.inter`` file (``{dataset}.seq.inter``) with the rows of each user in sequence
order and x_label 0 = train, 1 = validation, 2 = test; item ids stay those of the main split, so
the feature files still line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import write_json
from .dataset import TEST, TRAIN, VALID, read_inter_frame
from .preprocess import k_core, read_mapping, write_inter

MIN_SEQUENCE = 3  # one training item, one validation target, one test target


def loo_split(df: pd.DataFrame) -> pd.DataFrame:
    """Per user by (timestamp, row order): last -> test, second last -> validation, the rest -> train.

    Returns the rows sorted by (userID, sequence position) with a new x_label; users with fewer than
    :data:`MIN_SEQUENCE` interactions are an input error naming one of them."""
    if "timestamp" not in df.columns:
        raise InputError("the sequential split needs a 'timestamp' column in the .inter file")
    counts = df.groupby("userID").size()
    short = counts[counts < MIN_SEQUENCE]
    if len(short):
        raise InputError(
            f"user {short.index[0]} has {short.iloc[0]} interaction(s); the leave-one-out split needs "
            f"at least {MIN_SEQUENCE} per user ({len(short)} such users)"
        )
    out = df.assign(_row=np.arange(len(df))).sort_values(["userID", "timestamp", "_row"], kind="stable")
    from_end = out.groupby("userID").cumcount(ascending=False).to_numpy()
    out["x_label"] = np.select([from_end == 0, from_end == 1], [TEST, VALID], TRAIN)
    return out.drop(columns="_row").reset_index(drop=True)


def items_with_images(metadata: pd.DataFrame, item_map: pd.DataFrame) -> np.ndarray:
    """The item ids whose metadata record has a non-empty ``imUrl``."""
    if "imUrl" not in metadata.columns:
        return np.zeros(0, dtype=np.int64)
    url = metadata.set_index("asin")["imUrl"]
    url = url[~url.index.duplicated()]
    has = item_map["asin"].map(url).fillna("").astype(str).str.strip() != ""
    return item_map.loc[has.to_numpy(), "itemID"].to_numpy(np.int64)


def sequential_split(
    inter: str | Path,
    *,
    kcore: int,
    metadata: str | Path | None = None,
    item_map: str | Path | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The LOO split of a main split's interactions and its statistics; with ``metadata`` and
    ``item_map`` items without an image are removed and the k-core filter applied again."""
    df = read_inter_frame(inter)
    stats: dict = {"interactions_in": len(df), "removed_no_image": 0}
    if metadata is not None:
        from .amazon import read_metadata

        keep = items_with_images(read_metadata(metadata), read_mapping(item_map, "item"))
        kept = df["itemID"].isin(keep)
        stats["removed_no_image"] = int((~kept).sum())
        stats["items_without_image"] = int(df.loc[~kept, "itemID"].nunique())
        df, rounds = k_core(df[kept].reset_index(drop=True), k=kcore)
        stats["kcore_rounds"] = rounds
        if df.empty:
            raise InputError(f"{inter}: no interactions left after removing items without images and the {kcore}-core")
    out = loo_split(df)
    stats.update(users=int(out["userID"].nunique()), items=int(out["itemID"].nunique()), interactions=len(out))
    stats.update(
        {name: int((out["x_label"] == label).sum()) for name, label in (("train", 0), ("valid", 1), ("test", 2))}
    )
    return out, stats


def seq_split_step(
    *, inter: str, seq_inter: str, seq_stats: str, kcore: int, metadata: str | None = None, item_map: str | None = None
) -> None:
    """Workflow step: the LOO split of ``inter`` (items without images removed when metadata is given)."""
    out, stats = sequential_split(inter, kcore=kcore, metadata=metadata, item_map=item_map)
    write_inter(seq_inter, out)
    write_json(seq_stats, stats)


@dataclass(frozen=True)
class Sequences:
    """A LOO split as per-user item sequences: ``items`` in sequence order, user ``u``'s items are
    ``items[offsets[u]:offsets[u + 1]]`` (the last two are its validation and test targets)."""

    users: np.ndarray  # [n_users] the user ids, ascending
    offsets: np.ndarray  # [n_users + 1]
    items: np.ndarray  # [n_interactions]

    @classmethod
    def from_inter(cls, path: str | Path) -> Sequences:
        df = read_inter_frame(path)
        order = df["userID"].to_numpy()
        if np.any(np.diff(order) < 0):
            raise InputError(f"{path}: rows must be grouped by userID in sequence order (a .seq.inter file)")
        labels = df["x_label"].to_numpy()
        users, starts, counts = np.unique(order, return_index=True, return_counts=True)
        ends = starts + counts
        if np.any(counts < MIN_SEQUENCE) or np.any(labels[ends - 1] != TEST) or np.any(labels[ends - 2] != VALID):
            raise InputError(f"{path}: every user's last two rows must be its validation (1) and test (2) items")
        return cls(users, np.append(starts, len(df)).astype(np.int64), df["itemID"].to_numpy(np.int64))

    @property
    def n_users(self) -> int:
        return len(self.users)

    def examples(self, target: int, max_history: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(histories, targets, user ids) for the validation (``target=VALID``) or test (``TEST``) item of
        every user; see :meth:`windows` for the histories."""
        ends = self.offsets[1:] - (2 if target == VALID else 1)
        return self.windows(ends, self.offsets[:-1], max_history), self.items[ends], self.users

    def train_examples(self, max_history: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every prefix of each training sequence (TIGER's examples): the targets are a user's training
        items from the second on, the history the items before each."""
        starts, n_targets = self.offsets[:-1], np.diff(self.offsets) - 3
        owner = np.repeat(np.arange(self.n_users), n_targets)
        within = np.arange(len(owner)) - np.repeat(np.cumsum(n_targets) - n_targets, n_targets)
        pos = starts[owner] + 1 + within
        return self.windows(pos, starts[owner], max_history), self.items[pos], self.users[owner]

    def windows(self, ends: np.ndarray, starts: np.ndarray, max_history: int) -> np.ndarray:
        """[n, max_history] the at most ``max_history`` items before position ``ends[i]`` (not before
        ``starts[i]``), oldest first, left-padded with -1."""
        idx = ends[:, None] - max_history + np.arange(max_history)
        keep = idx >= starts[:, None]
        return np.where(keep, self.items[np.where(keep, idx, 0)], -1)


def item_categories(metadata: str | Path, item_map: pd.DataFrame) -> np.ndarray:
    """Each item's category (the leaf of its first ``categories`` path; "" when it has none) as an
    integer label per item id, for the AMI of semantic IDs against categories."""
    from .amazon import read_metadata

    meta = read_metadata(metadata)
    meta = meta[~meta["asin"].duplicated()].set_index("asin")
    paths = meta["categories"] if "categories" in meta.columns else pd.Series(dtype=object)

    def leaf(value: object) -> str:
        if isinstance(value, list) and value and isinstance(value[0], list) and value[0]:
            return str(value[0][-1])
        return ""

    names = item_map.sort_values("itemID")["asin"].map(paths).map(leaf)
    return pd.factorize(names)[0].astype(np.int64)
