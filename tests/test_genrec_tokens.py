"""Token layouts of TIGER, MGR-EF, MGR-LF and MGR-LF++ as exact token lists; alignment examples; metrics."""

from __future__ import annotations

import numpy as np
import pytest

from mmknockout.genrec.metrics import hits_by_part, per_user, summary
from mmknockout.genrec.tokens import IGNORE, TokenLayout, pad_labels

TEXT = np.array([[1, 0], [1, 0], [2, 3]])
IMAGE = np.array([[0, 1], [2, 2], [0, 1]])


def names(layout: TokenLayout, ids) -> list[str]:
    table = layout.names()
    return [table[i] for i in ids]


def test_lf_plus_plus_layout():
    lay = TokenLayout.of("MGR-LF++", levels=2, codebook_size=4, dedup_size=1)
    seq = lay.item_tokens({"text": TEXT, "image": IMAGE})
    assert names(lay, seq[0]) == ["<txt-1-1>", "<txt-2-0>", "<s-1>", "<img-1-0>", "<img-2-1>", "<dd-0>"]
    assert seq[0].tolist() == [7, 10, 5, 14, 19, 22]  # 5 specials, 1 transition, 4 codes per (block, level)
    assert lay.vocab_size == 23 and lay.item_length == 6


def test_lf_ef_tiger_layouts():
    lf = TokenLayout.of("MGR-LF", levels=2, codebook_size=4, dedup_size=1)
    assert names(lf, lf.item_tokens({"text": TEXT, "image": IMAGE})[2]) == [
        "<txt-1-2>",
        "<txt-2-3>",
        "<img-1-0>",
        "<img-2-1>",
        "<dd-0>",
    ]
    ef = TokenLayout.of("MGR-EF", levels=2, codebook_size=4, dedup_size=2)
    assert names(ef, ef.item_tokens({"fused": TEXT})[1]) == ["<mm-1-1>", "<mm-2-0>", "<dd-1>"]
    tiger = TokenLayout.of("TIGER-image", levels=2, codebook_size=4, dedup_size=2, user_buckets=3)
    assert tiger.item_tokens({"image": IMAGE}).tolist() == [[5, 10, 13], [7, 11, 13], [5, 10, 14]]
    assert names(tiger, [5, 10, 14, 15]) == ["<img-1-0>", "<img-2-1>", "<dd-1>", "<user-0>"]


def test_dedup_beyond_layout_is_refused():
    lay = TokenLayout.of("TIGER-text", levels=2, codebook_size=4, dedup_size=1)
    with pytest.raises(ValueError, match="collision group of 2"):
        lay.item_tokens({"text": TEXT})


def test_alignment_examples_golden():
    lay = TokenLayout.of("MGR-LF++", levels=2, codebook_size=4, dedup_size=1)
    inputs, targets = lay.alignment_examples({"text": TEXT, "image": IMAGE})
    assert names(lay, inputs[0]) == ["<img2txt>", "<img-1-0>", "<img-2-1>"]
    assert names(lay, targets[0]) == ["<txt-1-1>", "<txt-2-0>"]
    assert names(lay, inputs[3]) == ["<txt2img>", "<txt-1-1>", "<txt-2-0>"]
    assert names(lay, targets[3]) == ["<img-1-0>", "<img-2-1>"]
    assert pad_labels(targets[:1], 4).tolist() == [[7, 10, IGNORE, IGNORE]]


def test_history_inputs_pad_left_and_user_token_first():
    lay = TokenLayout.of("TIGER-text", levels=1, codebook_size=4, dedup_size=2, user_buckets=2)
    items = lay.item_tokens({"text": np.array([[0], [0], [3]])})  # ids: <txt-1-c> = 5 + c, <dd-d> = 9 + d
    got = lay.history_inputs(items, np.array([[-1, 0, 2], [1, 0, 2]]), users=np.array([3, 4]))
    assert got[0].tolist() == [0, 0, 12, 5, 9, 8, 9]  # padding, <user-1>, item 0, item 2
    assert got[1].tolist() == [11, 5, 10, 5, 9, 8, 9]  # <user-0>, items 1, 0, 2
    assert names(lay, got[0][2:3]) == ["<user-1>"]


def test_metric_hand_cases():
    # ranks of the target: 1, 3, 7, 15, not generated
    preds = np.full((5, 20), -1)
    targets = np.array([10, 11, 12, 13, 14])
    for u, r in enumerate([1, 3, 7, 15]):
        preds[u, r - 1] = targets[u]
    m = summary(per_user(preds, targets, (5, 10, 20)))
    assert m["HitRate@5"] == pytest.approx(2 / 5) and m["HitRate@10"] == pytest.approx(3 / 5)
    assert m["HitRate@20"] == pytest.approx(4 / 5) and m["Recall@20"] == m["HitRate@20"]
    assert m["MRR@5"] == pytest.approx((1 + 1 / 3) / 5)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 3 + 1 / 7 + 1 / 15) / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(8)) / 5)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(8) + 1 / np.log2(16)) / 5)


def test_hits_by_part():
    text = np.array([[0, 0], [0, 0], [1, 1], [2, 2]])
    image = np.array([[5, 5], [6, 6], [5, 5], [7, 7]])
    preds = np.array([[1, 3, 2, -1, -1], [3, 3, 3, 3, 3]])
    got = hits_by_part(preds, np.array([0, 0]), {"text": text, "image": image, "whole": np.arange(4)[:, None]}, k=5)
    assert got == {"text": 0.5, "image": 0.5, "whole": 0.0}
