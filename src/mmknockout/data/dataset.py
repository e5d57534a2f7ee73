"""The split dataset as every model and the trainer see it.

A split lives on disk as an MMRec-compatible ``.inter`` file: tab-separated with the header
``userID itemID rating timestamp x_label``, where ``x_label`` is 0 = train, 1 = validation,
2 = test. User and item ids are contiguous from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..io import read_error, require_file

INTER_COLUMNS = ["userID", "itemID", "rating", "timestamp", "x_label"]
TRAIN, VALID, TEST = 0, 1, 2


def read_inter_frame(path: str | Path) -> pd.DataFrame:
    """The rows of a tab-separated ``.inter`` file with at least userID, itemID and x_label."""
    path = require_file(path, "interaction", missing=f"interaction file not found: {path}")
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as a tab-separated .inter file ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    missing = {"userID", "itemID", "x_label"} - set(df.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)}; expected header {INTER_COLUMNS}")
    return df


@dataclass(frozen=True)
class NeighbourGraph:
    """Top-k neighbour lists: ``ids[n, k]`` (-1 pads short lists) and ``weights[n, k]`` (co-counts)."""

    ids: np.ndarray
    weights: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> NeighbourGraph:
        path = require_file(path, "neighbour graph")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(ids=z["ids"].astype(np.int64), weights=z["weights"].astype(np.float32))
        except KeyError as exc:
            raise InputError(f"{path}: neighbour graph has no array {exc}; expected 'ids' and 'weights'") from None
        except OSError as exc:
            raise read_error(path, exc) from None
        except (ValueError, EOFError) as exc:
            raise InputError(f"{path}: cannot read the neighbour graph .npz ({exc})") from None


@dataclass
class SplitData:
    """Interactions of one dataset with their split labels, plus optional auxiliary graphs."""

    n_users: int
    n_items: int
    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    user_graph: NeighbourGraph | None = None
    item_graph: NeighbourGraph | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)
    #: the rating of every interaction (the ``.inter``'s ``rating`` column); None: implicit feedback only
    ratings: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.ratings is not None:
            self.ratings = np.asarray(self.ratings, dtype=np.float64)

    @classmethod
    def from_inter(cls, path: str | Path, n_items: int | None = None, **kwargs) -> SplitData:
        """The split in ``path``; ``n_items`` (the dataset's ``stats.json``) counts items without
        interactions too, otherwise item ids must be contiguous from 0."""
        path = Path(path)
        df = read_inter_frame(path)
        validate_ids(df, path, n_items, "the dataset's stats.json")
        return cls(
            n_users=int(df["userID"].max()) + 1,
            n_items=int(df["itemID"].max()) + 1 if n_items is None else int(n_items),
            users=df["userID"].to_numpy(),
            items=df["itemID"].to_numpy(),
            labels=df["x_label"].to_numpy(),
            name=path.stem,
            ratings=read_ratings_column(df),
            **kwargs,
        )

    def part(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of one split part: TRAIN, VALID or TEST."""
        mask = self.labels == label
        return self.users[mask], self.items[mask]

    @cached_property
    def train_users(self) -> np.ndarray:
        return self.part(TRAIN)[0]

    @cached_property
    def train_items(self) -> np.ndarray:
        return self.part(TRAIN)[1]

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        """Binary user x item matrix of the training interactions."""
        return interaction_matrix(self.train_users, self.train_items, self.n_users, self.n_items)

    def matrix(self, label: int) -> sp.csr_matrix:
        u, i = self.part(label)
        return interaction_matrix(u, i, self.n_users, self.n_items)

    def rating_matrix(self, label: int) -> sp.csr_matrix:
        """User x item matrix of one split part holding the ratings (their mean for a repeated pair);
        the binary :meth:`matrix` when the split has no ratings."""
        if self.ratings is None:
            return self.matrix(label)
        mask = self.labels == label
        bad = np.flatnonzero(mask & ~np.isfinite(self.ratings))
        if bad.size:
            raise InputError(
                f"{self.name or 'split'}: interaction {bad[0]} (line {bad[0] + 2} of the .inter) has no numeric rating"
            )
        shape = (self.n_users, self.n_items)
        pairs = (self.users[mask], self.items[mask])
        total = sp.csr_matrix((self.ratings[mask], pairs), shape=shape)
        count = sp.csr_matrix((np.ones(int(mask.sum())), pairs), shape=shape)
        total.sum_duplicates()
        count.sum_duplicates()
        total.data /= count.data
        return total.astype(np.float32)

    def stats(self) -> dict:
        """Sizes of the split; sparsity counts distinct (user, item) pairs, so it is never negative."""
        counts = np.bincount(self.labels, minlength=3)
        n = len(self.users)
        pairs = np.unique(self.users * self.n_items + self.items).size
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "train": int(counts[TRAIN]),
            "valid": int(counts[VALID]),
            "test": int(counts[TEST]),
            "sparsity": 1.0 - pairs / (self.n_users * self.n_items),
            "items_in_train": int(np.unique(self.train_items).size),
            "items_with_interactions": int(np.unique(self.items).size),
        }


def item_count(stats: str | Path) -> int:
    """The dataset's item count from its ``stats.json`` (``items``: items without interactions included)."""
    import json

    path = require_file(stats, "dataset statistics")
    try:
        n = json.loads(path.read_text())["items"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: cannot read the item count 'items' ({exc!r})") from None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"{path}: 'items' must be a positive integer, found {n!r}")
    return n


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    data = np.ones(len(users), dtype=np.float32)
    m = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def read_ratings_column(df: pd.DataFrame) -> np.ndarray | None:
    """The ``rating`` column as float64, NaN where missing or not a number; None when the file has none.

    Only rating-aware evaluation and models read it (:meth:`SplitData.rating_matrix` checks it then).
    """
    if "rating" not in df:
        return None
    return pd.to_numeric(df["rating"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def validate_ids(df: pd.DataFrame, path: str | Path, n_items: int | None = None, counted_by: str = "") -> None:
    """Check that ids are non-negative integers, contiguous from 0, and labels are 0/1/2.

    With ``n_items`` the item ids need only be below it (items without interactions allowed);
    ``counted_by`` names where that count comes from, for the error message."""
    for col in ("userID", "itemID", "x_label"):
        if df[col].isna().any():
            row = int(df.index[df[col].isna()][0]) + 2
            raise InputError(f"{path}: empty {col} at line {row}")
        if not pd.api.types.is_integer_dtype(df[col]):
            raise InputError(f"{path}: column {col} must hold integers, found {df[col].dtype}")
    bad = ~df["x_label"].isin([TRAIN, VALID, TEST])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise InputError(f"{path}: x_label must be 0, 1 or 2; line {row} has {df['x_label'].iloc[row - 2]}")
    for col in ("userID", "itemID"):
        ids = df[col].to_numpy()
        if ids.min() < 0:
            raise InputError(f"{path}: negative {col} at line {int(np.argmin(ids)) + 2}")
        if col == "itemID" and n_items is not None:
            if ids.max() >= n_items:
                row = int(np.argmax(ids >= n_items))
                raise InputError(
                    f"{path}: line {row + 2}: itemID {ids[row]} is not below the item count {n_items}"
                    + (f" ({counted_by})" if counted_by else "")
                )
            continue
        n_unique = np.unique(ids).size
        if n_unique != ids.max() + 1:
            raise InputError(
                f"{path}: {col} must be contiguous from 0; found {n_unique} distinct ids but max {ids.max()}"
            )
