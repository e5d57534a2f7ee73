"""Repeated (user, item) rows: find them, refuse them or keep the earliest of each pair.

A dataset entry's ``deduplicate`` decides (``config/schema.yaml``):

* ``error`` (the default): stop with an :class:`InputError` naming the file, the number of repeated
  rows and the first of them;
* ``first``: keep the earliest row of each pair, by timestamp and then by file order, and drop the
  rest (reported in the log and in ``stats.json``);
* ``keep``: keep every row, as the MMRec toolbox and the upstream preprocessing do (which drop only
  exact (user, item, timestamp) copies). A test pair that is also a training pair is then masked
  at evaluation and can never be hit, yet counts in Recall's denominator.

Everything is vectorised: one ``np.lexsort`` over (pair, timestamp, row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

POLICIES = ("error", "first", "keep")
SHOWN = 3  # repeated rows quoted in the error message


@dataclass(frozen=True)
class Repeats:
    """The rows repeating an earlier (by timestamp, then file order) row of the same (user, item) pair.

    ``rows`` are positions in the frame (ascending); ``kept[j]`` is the position of the row that
    ``rows[j]`` repeats (the earliest of its pair); ``pairs`` counts the pairs with a repeat."""

    rows: np.ndarray
    kept: np.ndarray
    pairs: int

    def __len__(self) -> int:
        return len(self.rows)


def find_repeats(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> Repeats:
    """The repeats among the rows of ``users`` x ``items`` (any hashable ids), earliest first."""
    u_codes, _ = pd.factorize(np.asarray(users), sort=False)
    i_codes, i_uniques = pd.factorize(np.asarray(items), sort=False)
    pair = u_codes.astype(np.int64) * max(len(i_uniques), 1) + i_codes
    position = np.arange(len(pair))
    order = np.lexsort((position, np.asarray(timestamps), pair))
    sorted_pair = pair[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_pair[1:] != sorted_pair[:-1]
    group = np.cumsum(first) - 1  # group number of each sorted row
    head = order[first]  # the earliest row of every pair
    later = ~first
    rows, kept = order[later], head[group[later]]
    by_row = np.argsort(rows, kind="stable")
    return Repeats(rows=rows[by_row], kept=kept[by_row], pairs=int(np.unique(group[later]).size))


def apply_policy(
    df: pd.DataFrame,
    repeats: Repeats,
    policy: str,
    source: str,
    describe: Callable[[int, int], str],
    detail: str = "",
) -> tuple[pd.DataFrame, dict]:
    """Refuse (``error``), drop (``first``) or keep the repeats; returns the frame and a report for stats.json.

    ``describe(row, kept)`` words one repeated row for the messages (file line numbers); ``detail``
    is added to the count (e.g. how many repeat a pair of another split part)."""
    if policy not in POLICIES:
        raise InputError(f"deduplicate must be one of {', '.join(POLICIES)}, got {policy!r}")
    report = {"policy": policy, "repeated_rows": len(repeats), "repeated_pairs": repeats.pairs, "dropped": 0}
    if not len(repeats):
        return df, report
    if policy == "error":
        shown = "; ".join(
            describe(int(r), int(k)) for r, k in zip(repeats.rows[:SHOWN], repeats.kept[:SHOWN], strict=True)
        )
        more = f" (first {SHOWN}: {shown})" if len(repeats) > SHOWN else f" ({shown})"
        raise InputError(
            f"{source}: {len(repeats)} row(s) repeat an earlier (userID, itemID) pair, in {repeats.pairs} pair(s)"
            f"{detail}{more}. Set `deduplicate: first` on the dataset in the config to keep the earliest row of each "
            "pair (by timestamp, then file order), or `deduplicate: keep` to keep them all (what the MMRec "
            "toolbox and the upstream preprocessing do)"
        )
    if policy == "first":
        keep = np.ones(len(df), dtype=bool)
        keep[repeats.rows] = False
        df = df.iloc[np.flatnonzero(keep)]
        report["dropped"] = len(repeats)
    print(
        f"{source}: {len(repeats)} repeated (userID, itemID) row(s) in {repeats.pairs} pair(s){detail}: "
        f"{_verb(policy)}; first: {describe(int(repeats.rows[0]), int(repeats.kept[0]))}"
    )
    return df, report


def _verb(policy: str) -> str:
    return "dropped, the earliest row of each pair kept" if policy == "first" else "kept (deduplicate: keep)"
