"""The leave-one-out sequential split: chronological order, a stable tie-break, image filtering."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from mmknockout.data.sequential import Sequences, item_categories, loo_split, seq_split_step, sequential_split
from mmknockout.errors import InputError


def inter(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["userID", "itemID", "timestamp"])
    return df.assign(rating=5.0, x_label=0)[["userID", "itemID", "rating", "timestamp", "x_label"]]


# user 0: items 3 and 4 share timestamp 20 (3 comes first in the file); user 1 is listed out of order
FIXTURE = [(0, 5, 30), (0, 3, 20), (1, 1, 9), (0, 4, 20), (0, 2, 10), (1, 2, 7), (1, 0, 8)]


def test_loo_order_ties_and_labels():
    out = loo_split(inter(FIXTURE))
    u0 = out[out.userID == 0]
    assert u0.itemID.tolist() == [2, 3, 4, 5]  # tie 3/4 broken by file order
    assert u0.x_label.tolist() == [0, 0, 1, 2]
    u1 = out[out.userID == 1]
    assert u1.itemID.tolist() == [2, 0, 1] and u1.x_label.tolist() == [0, 1, 2]


def test_loo_tie_break_follows_file_order():
    swapped = [FIXTURE[i] for i in (0, 3, 2, 1, 4, 5, 6)]  # item 4 now before item 3 in the file
    out = loo_split(inter(swapped))
    assert out[out.userID == 0].itemID.tolist() == [2, 4, 3, 5]


def test_short_user_is_an_error_naming_it():
    with pytest.raises(InputError, match="user 7 has 2"):
        loo_split(inter(FIXTURE + [(7, 1, 1), (7, 2, 2)]))


def test_sequences_examples(tmp_path):
    rows = [(0, i, 10 * i) for i in range(6)] + [(1, 9, 1), (1, 8, 2), (1, 7, 3)]
    path = tmp_path / "x.inter"
    out = loo_split(inter(rows))
    out.to_csv(path, sep="\t", index=False)
    seqs = Sequences.from_inter(path)
    hist, tgt, users = seqs.examples(2, max_history=3)
    assert tgt.tolist() == [5, 7] and users.tolist() == [0, 1]
    assert hist.tolist() == [[2, 3, 4], [-1, 9, 8]]
    hist, tgt, users = seqs.examples(1, max_history=3)
    assert tgt.tolist() == [4, 8] and hist.tolist() == [[1, 2, 3], [-1, -1, 9]]
    hist, tgt, users = seqs.train_examples(max_history=2)
    assert tgt.tolist() == [1, 2, 3]  # user 0's training items 0..3 give targets 1, 2, 3; user 1 has one training item
    assert hist.tolist() == [[-1, 0], [0, 1], [1, 2]] and users.tolist() == [0, 0, 0]


def test_unsorted_file_is_refused(tmp_path):
    path = tmp_path / "x.inter"
    inter(FIXTURE).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match="grouped by userID"):
        Sequences.from_inter(path)


def write_meta(path, records):
    with gzip.open(path, "wt") as fh:
        for r in records:
            fh.write(repr(r) + "\n")


def test_items_without_images_removed_then_kcore(tmp_path):
    rows = [(u, i, 100 * u + i) for u in range(4) for i in range(4)] + [(0, 4, 999)]
    inter(rows).to_csv(tmp_path / "d.inter", sep="\t", index=False)
    pd.DataFrame({"asin": [f"A{i}" for i in range(5)], "itemID": range(5)}).to_csv(
        tmp_path / "map.csv", sep="\t", index=False
    )
    records = [{"asin": f"A{i}", "imUrl": "http://x/y.jpg", "categories": [["Top", f"C{i % 2}"]]} for i in range(4)]
    write_meta(tmp_path / "meta.json.gz", records + [{"asin": "A4"}])
    out, stats = sequential_split(
        tmp_path / "d.inter", kcore=3, metadata=tmp_path / "meta.json.gz", item_map=tmp_path / "map.csv"
    )
    assert 4 not in set(out.itemID) and stats["removed_no_image"] == 1 and stats["items_without_image"] == 1
    assert stats["users"] == 4 and stats["test"] == 4
    cats = item_categories(tmp_path / "meta.json.gz", pd.read_csv(tmp_path / "map.csv", sep="\t", dtype={"asin": str}))
    assert cats.tolist() == [0, 1, 0, 1, 2]  # the leaf of the first path; A4 has none
    seq_split_step(
        inter=str(tmp_path / "d.inter"),
        seq_inter=str(tmp_path / "s.inter"),
        seq_stats=str(tmp_path / "s.json"),
        kcore=3,
    )
    assert len(pd.read_csv(tmp_path / "s.inter", sep="\t")) == len(rows)
