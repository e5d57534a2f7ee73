"""Ratings -> 5-core -> re-index -> seeded per-user random split (PROTOCOL sec 2).

The steps, in the upstream order:

1. drop rows with NA in ``userID``, ``itemID`` or ``timestamp``;
2. drop exact duplicates on ``(userID, itemID, timestamp)`` (not on ``(userID, itemID)``); rows
   still repeating a ``(userID, itemID)`` pair (a repeated review at another time) are then
   refused, reduced to the earliest or kept, as the dataset's ``deduplicate`` says
   (:mod:`.duplicates`; upstream keeps them, which is ``keep``);
3. iterative k-core: each round finds *every* user and item below ``k`` interactions on the current
   frame, drops all their interactions together, and repeats until none is below (the unique
   k-core, so deterministic);
4. re-index users and items from 0 in order of first appearance in the filtered file
   (``pd.unique``); mappings ``u_id_mapping.csv`` (``user_id\\tuserID``) and ``i_id_mapping.csv``
   (``asin\\titemID``);
5. per-user random split: shuffle all interactions with a *seeded* permutation (upstream's
   ``df.sample(frac=1)`` is unseeded), stable-sort by user, then per user with ``n`` interactions:
   ``n < 10``: ``n-2`` train, 1 validation, 1 test; otherwise ``v = floor(0.2 n)``,
   ``val = floor(v / 2)``, ``test = v - val``, train the rest. Labels 0/1/2 in that order.

On the real 2014 Baby ratings file (``ratings_Baby.csv``) this gives 19,445 users, 7,050 items and
160,792 interactions, of which 118,551 train / 20,559 validation / 21,682 test (PROTOCOL 2.5).
This cannot be checked in the test suite (the file is not bundled); the workflow's data rule
compares ``stats.json`` with these numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_error, require_file, write_json, write_text
from .amazon import line_of, read_ratings
from .amazon2023 import is_2023_file
from .dataset import INTER_COLUMNS, TEST, TRAIN, VALID, SplitData
from .duplicates import apply_policy, find_repeats


def clean(ratings: pd.DataFrame, deduplicate: str, source: str | os.PathLike = "ratings") -> tuple[pd.DataFrame, dict]:
    """Steps 1-2: drop NA (userID, itemID, timestamp), then exact duplicates on (userID, itemID, timestamp),
    then apply ``deduplicate`` to the rows still repeating a (userID, itemID) pair.

    ``source`` is the ratings file the frame was read from (its line numbers name the repeats)."""
    n0 = len(ratings)
    df = ratings.dropna(subset=["userID", "itemID", "timestamp"])
    n1 = len(df)
    df = df.drop_duplicates(subset=["userID", "itemID", "timestamp"], keep="first")
    n2 = len(df)
    repeats = find_repeats(df["userID"].to_numpy(), df["itemID"].to_numpy(), df["timestamp"].to_numpy(dtype=np.int64))
    index, path = df.index.to_numpy(), Path(source)  # rows of the parsed file
    by_line = path.is_file() and not is_2023_file(path)  # a 2023 .jsonl.gz is named by record
    unit = "line" if by_line else "record"

    def describe(row: int, kept: int) -> str:
        where = (line_of(path, int(index[r])) if by_line else int(index[r]) + 1 for r in (row, kept))
        line, first = where
        return f"{unit} {line} (user {df['userID'].iloc[row]}, item {df['itemID'].iloc[row]}) repeats {unit} {first}"

    df, report = apply_policy(df, repeats, deduplicate, str(source), describe)
    df = df.reset_index(drop=True)
    df["timestamp"] = df["timestamp"].astype("int64")
    df["rating"] = df["rating"].astype("float64")
    stats = {"raw_rows": n0, "removed_na": n0 - n1, "removed_duplicates": n1 - n2}
    return df, {**stats, "removed_repeats": report["dropped"], "duplicates": report}


def k_core(
    df: pd.DataFrame, k: int = 5, user_col: str = "userID", item_col: str = "itemID"
) -> tuple[pd.DataFrame, int]:
    """Iterative k-core on users and items; returns (filtered frame in original row order, rounds).

    A round removes every user and every item with fewer than ``k`` interactions on the current
    frame at once (PROTOCOL 2.1). Counts are ``np.bincount`` over factorised ids, so a round costs
    O(rows).
    """
    if k < 1:
        raise InputError(f"k-core: k must be >= 1, got {k}")
    u_codes, _ = pd.factorize(df[user_col], sort=False)
    i_codes, _ = pd.factorize(df[item_col], sort=False)
    keep = np.ones(len(df), dtype=bool)
    rounds = 0
    while True:
        u, i = u_codes[keep], i_codes[keep]
        u_cnt = np.bincount(u, minlength=u_codes.max() + 1 if len(u_codes) else 0)
        i_cnt = np.bincount(i, minlength=i_codes.max() + 1 if len(i_codes) else 0)
        ok = (u_cnt[u] >= k) & (i_cnt[i] >= k)
        if ok.all():
            break
        rounds += 1
        idx = np.flatnonzero(keep)
        keep[idx[~ok]] = False
    return df.loc[keep].reset_index(drop=True), rounds


def reindex(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Contiguous ids from 0 in order of first appearance; returns (frame, user map, item map)."""
    users = pd.unique(df["userID"])
    items = pd.unique(df["itemID"])
    u_map = pd.DataFrame({"user_id": users, "userID": np.arange(len(users), dtype=np.int64)})
    i_map = pd.DataFrame({"asin": items, "itemID": np.arange(len(items), dtype=np.int64)})
    out = df.copy()
    out["userID"] = pd.Index(users).get_indexer(df["userID"]).astype(np.int64)
    out["itemID"] = pd.Index(items).get_indexer(df["itemID"]).astype(np.int64)
    return out, u_map, i_map


def split_sizes(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) sizes for users with ``n`` interactions (PROTOCOL 2.3b)."""
    n = np.asarray(n, dtype=np.int64)
    v = n // 5
    val = np.where(n < 10, 1, v // 2)
    test = np.where(n < 10, 1, v - v // 2)
    return n - val - test, val, test


def random_split(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Seeded per-user random split; returns the frame sorted by userID with an ``x_label`` column.

    One seeded permutation of all rows, then a stable sort by user keeps the shuffled order within
    each user; the rank within the user (``groupby.cumcount``) decides the label.
    """
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))]
    order = np.argsort(shuffled["userID"].to_numpy(), kind="stable")
    out = shuffled.iloc[order].reset_index(drop=True)
    rank = out.groupby("userID", sort=False).cumcount().to_numpy()
    n = out.groupby("userID", sort=False)["userID"].transform("size").to_numpy()
    if n.size and n.min() < 3:
        raise InputError(
            f"split: every user needs at least 3 interactions (found a user with {n.min()}); use k >= 3 in the k-core"
        )
    n_train, n_val, _ = split_sizes(n)
    out["x_label"] = np.where(rank < n_train, TRAIN, np.where(rank < n_train + n_val, VALID, TEST)).astype(np.int64)
    return out


def prepare(
    ratings_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str,
    seed: int,
    k: int = 5,
    deduplicate: str = "error",
) -> dict:
    """Ratings CSV -> ``{name}.inter``, ``u_id_mapping.csv``, ``i_id_mapping.csv``, ``stats.json``.

    Returns the statistics written to ``stats.json``: :meth:`SplitData.stats` plus the number of
    rows removed by each step (``removed_na``, ``removed_duplicates``, ``removed_repeats``,
    ``removed_kcore``), the repeated-pair report (``duplicates``), the number of k-core rounds,
    ``k`` and ``seed``.

    On the real ``ratings_Baby.csv`` (2014) the result is 19,445 users / 7,050 items / 160,792
    interactions with 118,551 in train (PROTOCOL 2.5); the split sizes depend only on the per-user
    counts, so these numbers hold for every seed.
    """
    out_dir = Path(out_dir)
    ratings = read_ratings(ratings_path)
    df, stats = clean(ratings, deduplicate, ratings_path)
    n_clean = len(df)
    df, rounds = k_core(df, k=k)
    if df.empty:
        raise InputError(
            f"{ratings_path}: no interactions left after the {k}-core filter "
            f"({n_clean} rows after cleaning); the file is too small or too sparse for k={k}"
        )
    stats.update(removed_kcore=n_clean - len(df), kcore_rounds=rounds, k=k, seed=seed)
    df, u_map, i_map = reindex(df)
    df = random_split(df, seed)
    write_inter(out_dir / f"{name}.inter", df)
    write_text(out_dir / "u_id_mapping.csv", u_map.to_csv(sep="\t", index=False))
    write_text(out_dir / "i_id_mapping.csv", i_map.to_csv(sep="\t", index=False))
    data = SplitData(len(u_map), len(i_map), df["userID"], df["itemID"], df["x_label"], name=name)
    stats = {**data.stats(), **stats}
    write_json(out_dir / "stats.json", stats)
    return stats


def write_inter(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write an MMRec ``.inter`` file (tab-separated, header ``userID itemID rating timestamp x_label``)."""
    out = df[INTER_COLUMNS].copy()
    out["rating"] = out["rating"].astype("float64")
    out["timestamp"] = out["timestamp"].astype("int64")
    write_text(path, out.to_csv(sep="\t", index=False))


def read_mapping(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    """Read ``u_id_mapping.csv`` (kind="user") or ``i_id_mapping.csv`` (kind="item")."""
    cols = {"user": ["user_id", "userID"], "item": ["asin", "itemID"]}[kind]
    path = require_file(path, f"{kind} id mapping", missing=f"{kind} id mapping not found: {path}")
    try:
        df = pd.read_csv(path, sep="\t", dtype={cols[0]: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as a tab-separated {kind} id mapping ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    if list(df.columns) != cols:
        raise InputError(f"{path}: header must be {cols[0]}<TAB>{cols[1]}, found {list(df.columns)}")
    ids = pd.to_numeric(df[cols[1]], errors="coerce")
    if ids.isna().any() or not np.array_equal(np.sort(ids.to_numpy()), np.arange(len(df))):
        raise InputError(f"{path}: {cols[1]} must be the integers 0..{len(df) - 1}, each once")
    df[cols[1]] = ids.astype(np.int64)
    return df


def prepare_split(
    *, ratings: str, inter: str, stats: str, item_map: str, user_map: str, seed: int, kcore: int, deduplicate: str
) -> dict:
    """Workflow step: :func:`prepare` into the folder of ``inter``, whose outputs the rule names."""
    out_dir, name = Path(inter).parent, Path(inter).stem
    layout = {
        inter: out_dir / f"{name}.inter",
        stats: out_dir / "stats.json",
        item_map: out_dir / "i_id_mapping.csv",
        user_map: out_dir / "u_id_mapping.csv",
    }
    wrong = [str(got) for got, expected in layout.items() if Path(got) != expected]
    if wrong:
        raise InputError(f"prepare_split writes {sorted(map(str, layout.values()))}; the rule names {wrong}")
    return prepare(ratings, out_dir, name, seed=seed, k=kcore, deduplicate=deduplicate)
