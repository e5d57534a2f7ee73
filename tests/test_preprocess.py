"""k-core, re-indexing and the seeded per-user split (PROTOCOL sec 2)."""

import json

import numpy as np
import pandas as pd
import pytest

from mmknockout.data.dataset import SplitData
from mmknockout.data.preprocess import clean, k_core, prepare, random_split, read_mapping, reindex, split_sizes
from mmknockout.errors import InputError


def _frame(pairs):
    return pd.DataFrame(
        {
            "userID": [p[0] for p in pairs],
            "itemID": [p[1] for p in pairs],
            "rating": 5.0,
            "timestamp": np.arange(len(pairs), dtype=np.int64),
        }
    )


def test_k_core_cascade():
    # k=2. Users a,b,c all rate items X and Y; user d rates X and Z; Z is rated only by d.
    # Round 1 removes item Z (1 rating); then d has only X (1 < 2) and is removed in round 2.
    pairs = [("a", "X"), ("a", "Y"), ("b", "X"), ("b", "Y"), ("c", "X"), ("c", "Y"), ("d", "X"), ("d", "Z")]
    out, rounds = k_core(_frame(pairs), k=2)
    assert sorted(set(out["userID"])) == ["a", "b", "c"]
    assert sorted(set(out["itemID"])) == ["X", "Y"]
    assert rounds == 2
    assert (out.groupby("userID").size() >= 2).all() and (out.groupby("itemID").size() >= 2).all()


def test_k_core_removes_users_and_items_in_the_same_round():
    # user e has 1 rating (of X) and item W is rated only by a: both go in round 1 together.
    pairs = [("a", "X"), ("a", "Y"), ("a", "W"), ("b", "X"), ("b", "Y"), ("e", "X")]
    out, rounds = k_core(_frame(pairs), k=2)
    assert set(out["userID"]) == {"a", "b"} and set(out["itemID"]) == {"X", "Y"}
    assert rounds == 1


def test_k_core_matches_naive_fixpoint():
    rng = np.random.default_rng(3)
    df = _frame(list(zip(rng.integers(0, 60, 500), rng.integers(0, 40, 500), strict=True))).drop_duplicates(
        ["userID", "itemID"]
    )
    out, _ = k_core(df, k=5)
    ref = df
    while True:  # naive reference
        u = ref.groupby("userID")["itemID"].transform("size")
        i = ref.groupby("itemID")["userID"].transform("size")
        nxt = ref[(u >= 5) & (i >= 5)]
        if len(nxt) == len(ref):
            break
        ref = nxt
    assert out.reset_index(drop=True).equals(ref.reset_index(drop=True))


def test_clean_drops_na_then_exact_duplicates():
    df = pd.DataFrame(
        {
            "userID": ["a", "a", "a", None, "b"],
            "itemID": ["X", "X", "X", "Y", "Y"],
            "rating": [5.0, 4.0, 5.0, 1.0, 2.0],
            "timestamp": pd.array([1, 1, 2, 3, None], dtype="Int64"),
        }
    )
    out, st = clean(df, "keep")
    # (a,X,1) twice -> one kept (the first); (a,X,2) differs in timestamp and is kept (upstream)
    assert out[["userID", "itemID", "timestamp"]].values.tolist() == [["a", "X", 1], ["a", "X", 2]]
    assert out["rating"].tolist() == [5.0, 5.0]
    assert {k: st[k] for k in ("raw_rows", "removed_na", "removed_duplicates", "removed_repeats")} == {
        "raw_rows": 5,
        "removed_na": 2,
        "removed_duplicates": 1,
        "removed_repeats": 0,
    }
    assert st["duplicates"]["repeated_rows"] == 1


@pytest.mark.parametrize(
    "n,expected",
    [
        (5, (3, 1, 1)),
        (9, (7, 1, 1)),
        (10, (8, 1, 1)),
        (23, (19, 2, 2)),
        (3, (1, 1, 1)),
        (15, (12, 1, 2)),
        (100, (80, 10, 10)),
    ],
)
def test_split_sizes(n, expected):
    assert tuple(int(x[0]) for x in split_sizes(np.array([n]))) == expected


def _users_frame(counts):
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([np.arange(c) for c in counts])
    return pd.DataFrame({"userID": users, "itemID": items, "rating": 1.0, "timestamp": np.arange(len(users))})


def test_random_split_sizes_per_user():
    counts = [5, 9, 10, 23]
    out = random_split(_users_frame(counts), seed=0)
    assert (np.diff(out["userID"].to_numpy()) >= 0).all()  # sorted by user
    got = out.groupby("userID")["x_label"].apply(lambda s: tuple(np.bincount(s, minlength=3))).tolist()
    assert got == [(3, 1, 1), (7, 1, 1), (8, 1, 1), (19, 2, 2)]
    # within a user, labels appear in the order train, valid, test
    for _, g in out.groupby("userID"):
        assert (np.diff(g["x_label"].to_numpy()) >= 0).all()


def test_random_split_deterministic_and_seed_dependent():
    df = _users_frame([12] * 30)
    a, b, c = random_split(df, 7), random_split(df, 7), random_split(df, 8)
    assert a.equals(b)
    assert not a["itemID"].equals(c["itemID"])

    # the set of interactions never changes
    def key(f):
        return sorted(zip(f.userID, f.itemID, strict=True))

    assert key(a) == key(df) == key(c)


def test_reindex_first_appearance():
    df = pd.DataFrame(
        {
            "userID": ["u9", "u1", "u9", "u5"],
            "itemID": ["B3", "B3", "B1", "B2"],
            "rating": 1.0,
            "timestamp": [1, 2, 3, 4],
        }
    )
    out, u_map, i_map = reindex(df)
    assert u_map.values.tolist() == [["u9", 0], ["u1", 1], ["u5", 2]]
    assert i_map.values.tolist() == [["B3", 0], ["B1", 1], ["B2", 2]]
    assert out["userID"].tolist() == [0, 1, 0, 2] and out["itemID"].tolist() == [0, 0, 1, 2]


def _ratings_csv(path, n_users=40, n_items=25, per_user=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, per_user, replace=False):
            rows.append(f"AU{u:04d},B{i:09d},{rng.integers(1, 6)}.0,{1300000000 + int(rng.integers(1e6))}")
    rows.append("AUSHORT,B000000000,5.0,1300000000")  # a user with 1 rating: removed by the 5-core
    rows.append(rows[0])  # an exact duplicate
    path.write_text("\n".join(rows) + "\n")


def test_prepare_writes_all_files(tmp_path):
    r = tmp_path / "ratings.csv"
    _ratings_csv(r)
    out = tmp_path / "out"
    stats = prepare(r, out, "toy", seed=999)
    assert stats["removed_duplicates"] == 1 and stats["removed_kcore"] >= 1 and stats["removed_na"] == 0
    assert stats["users"] == 40 and stats["interactions"] == 320
    assert stats["train"] == 40 * 6 and stats["valid"] == 40 and stats["test"] == 40
    assert json.loads((out / "stats.json").read_text()) == stats
    inter = (out / "toy.inter").read_text().splitlines()
    assert inter[0] == "userID\titemID\trating\ttimestamp\tx_label"
    assert inter[1].split("\t")[2].endswith(".0")  # rating is a float
    data = SplitData.from_inter(out / "toy.inter")
    assert (data.n_users, data.n_items) == (stats["users"], stats["items"])
    assert (np.diff(data.users) >= 0).all()
    assert (out / "u_id_mapping.csv").read_text().splitlines()[:2] == ["user_id\tuserID", "AU0000\t0"]
    i_map = read_mapping(out / "i_id_mapping.csv", "item")
    assert list(i_map.columns) == ["asin", "itemID"] and len(i_map) == stats["items"]
    assert i_map["asin"].str.len().eq(10).all()  # leading zeros of ASIN-like ids survive
    # deterministic for a seed
    prepare(r, tmp_path / "again", "toy", seed=999)
    assert (tmp_path / "again" / "toy.inter").read_bytes() == (out / "toy.inter").read_bytes()


def test_prepare_empty_after_kcore(tmp_path):
    r = tmp_path / "ratings.csv"
    r.write_text("A1,B001,5.0,1300000000\nA2,B001,4.0,1300000001\n")
    with pytest.raises(InputError, match="no interactions left after the 5-core"):
        prepare(r, tmp_path / "out", "x", seed=1)
    assert not (tmp_path / "out" / "x.inter").exists()


def test_read_mapping_bad_header(tmp_path):
    p = tmp_path / "i_id_mapping.csv"
    p.write_text("asin,itemID\nB1,0\n")
    with pytest.raises(InputError, match="header must be asin<TAB>itemID"):
        read_mapping(p, "item")
