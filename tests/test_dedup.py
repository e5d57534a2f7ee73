"""Repeated (user, item) rows: found against brute force, refused by default, the earliest kept on request."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from mmknockout.data.dataset import SplitData
from mmknockout.data.duplicates import find_repeats
from mmknockout.data.mmrec import import_mmrec
from mmknockout.data.preprocess import prepare
from mmknockout.errors import InputError


def _brute_force(users, items, timestamps):
    """Row -> the row it repeats: the earliest (timestamp, position) of its pair, by a plain loop."""
    out = {}
    for r in range(len(users)):
        same = [j for j in range(len(users)) if users[j] == users[r] and items[j] == items[r]]
        first = min(same, key=lambda j: (timestamps[j], j))
        if first != r:
            out[r] = first
    return out


@pytest.mark.parametrize("seed", range(5))
def test_find_repeats_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    users = rng.integers(0, 5, n)
    items = np.array([f"i{x}" for x in rng.integers(0, 4, n)])  # string ids, like raw Amazon files
    timestamps = rng.integers(0, 6, n)  # ties: file order decides
    got = find_repeats(users, items, timestamps)
    expected = _brute_force(users, items, timestamps)
    assert dict(zip(got.rows.tolist(), got.kept.tolist(), strict=True)) == expected
    assert got.pairs == len({(users[r], items[r]) for r in expected})
    assert list(got.rows) == sorted(got.rows)


def test_find_repeats_none():
    got = find_repeats(np.arange(4), np.arange(4), np.zeros(4))
    assert len(got) == 0 and got.pairs == 0


def _mmrec(path, rows, n_items=4):
    path.mkdir()
    df = pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp", "x_label"])
    df.to_csv(path / "toy.inter", sep="\t", index=False)
    np.save(path / "text_feat.npy", np.random.default_rng(0).random((n_items, 3)).astype(np.float32))
    return df


BASE = [(u, i, 1.0, 10 * u + i, x) for u in range(3) for i, x in zip(range(3), (0, 1, 2), strict=True)]


def test_mmrec_repeats_refused_by_default(tmp_path):
    rows = BASE + [(0, 0, 1.0, 50, 2), (1, 1, 1.0, 60, 1)]  # a training pair again in test; a repeat in valid
    _mmrec(tmp_path / "src", rows)
    with pytest.raises(InputError) as exc:
        import_mmrec(tmp_path / "src", "toy", tmp_path / "out")
    msg = str(exc.value)
    assert "toy.inter: 2 row(s) repeat an earlier (userID, itemID) pair, in 2 pair(s)" in msg
    assert "1 of them in another split part" in msg
    assert "line 11 (userID 0, itemID 0, test) repeats line 2 (train)" in msg
    assert "line 12 (userID 1, itemID 1, validation) repeats line 6 (validation)" in msg
    assert "deduplicate: first" in msg
    assert not (tmp_path / "out" / "toy.inter").exists()


def test_mmrec_first_keeps_earliest_and_reports(tmp_path, capsys):
    # user 2's test pair (2, 2) appears first in train at a later time: the earlier test row wins
    rows = BASE + [(0, 0, 1.0, 50, 2), (2, 2, 1.0, 99, 0), (0, 0, 1.0, 0, 1)]
    _mmrec(tmp_path / "src", rows)
    stats = import_mmrec(tmp_path / "src", "toy", tmp_path / "out", deduplicate="first")
    dup = stats["duplicates"]
    assert dup["policy"] == "first" and dup["dropped"] == 3 and dup["repeated_pairs"] == 2
    # (0,0): timestamps 0 (line 13, valid), 0 (line 2, train) and 50: the tie goes to file order (line 2)
    assert dup["dropped_by_split"] == {"train": 1, "validation": 1, "test": 1}
    assert dup["across_splits"] == 3
    data = SplitData.from_inter(tmp_path / "out" / "toy.inter")
    pairs = list(zip(data.users.tolist(), data.items.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 9
    labels = dict(zip(pairs, data.labels.tolist(), strict=True))
    assert labels[(0, 0)] == 0 and labels[(2, 2)] == 2
    assert stats["interactions"] == 9 and 0 <= stats["sparsity"] < 1
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["duplicates"] == dup
    assert "3 repeated (userID, itemID) row(s)" in capsys.readouterr().out


def test_mmrec_keep_and_sparsity_never_negative(tmp_path):
    rows = [(0, 0, 1.0, t, x) for t, x in ((0, 0), (1, 1), (2, 2), (3, 0))]  # one pair, four times
    _mmrec(tmp_path / "src", rows, n_items=1)
    stats = import_mmrec(tmp_path / "src", "toy", tmp_path / "out", deduplicate="keep")
    assert stats["interactions"] == 4 and stats["sparsity"] == 0.0  # 1 user x 1 item, one distinct pair
    assert stats["duplicates"] == {
        "policy": "keep",
        "repeated_rows": 3,
        "repeated_pairs": 1,
        "dropped": 0,
        "across_splits": 2,
        "dropped_by_split": {"train": 0, "validation": 0, "test": 0},
    }


def test_bad_policy(tmp_path):
    _mmrec(tmp_path / "src", BASE + [(0, 0, 1.0, 50, 2)])
    with pytest.raises(InputError, match="deduplicate must be one of error, first, keep"):
        import_mmrec(tmp_path / "src", "toy", tmp_path / "out", deduplicate="last")


def _ratings(path, repeat_at=None):
    """8 users x 8 items, all pairs (a 5-core); optionally one repeated review of (u0, i0) at another time."""
    lines = [f"U{u},B{i:03d},5.0,{1000 + 10 * u + i}" for u, i in itertools.product(range(8), range(8))]
    lines.insert(3, "")  # a blank line: line numbers must still be the file's
    lines.append(lines[0])  # an exact copy: dropped as upstream does, not a repeat
    if repeat_at is not None:
        lines.append(f"U0,B000,4.0,{repeat_at}")
    path.write_text("\n".join(lines) + "\n")


def test_raw_ratings_repeats(tmp_path):
    r = tmp_path / "ratings.csv"
    _ratings(r)
    stats = prepare(r, tmp_path / "clean", "toy", seed=1)  # exact copies only: the default accepts it
    assert stats["removed_duplicates"] == 1 and stats["duplicates"]["repeated_rows"] == 0
    _ratings(r, repeat_at=5)  # earlier than the original review (timestamp 1000)
    with pytest.raises(
        InputError, match=r"ratings.csv: 1 row\(s\) repeat .*line 1 \(user U0, item B000\) repeats line 67"
    ):
        prepare(r, tmp_path / "err", "toy", seed=1)
    kept = prepare(r, tmp_path / "keep", "toy", seed=1, deduplicate="keep")
    assert kept["interactions"] == 65 and kept["removed_repeats"] == 0
    first = prepare(r, tmp_path / "first", "toy", seed=1, deduplicate="first")
    assert first["interactions"] == 64 and first["removed_repeats"] == 1
    inter = pd.read_csv(tmp_path / "first" / "toy.inter", sep="\t")
    assert not inter.duplicated(["userID", "itemID"]).any()
    assert 5 in set(inter.timestamp) and 1000 not in set(inter.timestamp)  # the earliest review of (U0, B000) kept


def test_2023_reviews_repeats_named_by_record(tmp_path):
    """Amazon 2023 reviews of two variants of one product share its parent_asin: repeated pairs."""
    import gzip

    records = [
        {"user_id": f"U{u}", "parent_asin": f"P{i}", "rating": 5.0, "timestamp": (1000 + 10 * u + i) * 1000}
        for u, i in itertools.product(range(6), range(6))
    ]
    records.append({"user_id": "U1", "parent_asin": "P2", "rating": 3.0, "timestamp": 5_000_000})  # a later review
    path = tmp_path / "Baby.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(InputError, match=r"record 37 \(user U1, item P2\) repeats record 9"):
        prepare(path, tmp_path / "err", "toy", seed=1)
    stats = prepare(path, tmp_path / "first", "toy", seed=1, deduplicate="first")
    assert stats["interactions"] == 36 and stats["removed_repeats"] == 1
