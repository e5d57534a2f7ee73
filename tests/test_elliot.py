"""Elliot's evaluation mode on hand cases: threshold, graded gains, dropped users, HitRate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmknockout.data.dataset import TEST, TRAIN, SplitData
from mmknockout.errors import InputError
from mmknockout.train.evaluator import Evaluator
from mmknockout.train.metrics import graded_gain
from mmknockout.train.trainer import TrainConfig


class FixedScores(torch.nn.Module):
    """Scores given as a table (the evaluator masks the training items itself)."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def representations(self):
        return ()

    def score(self, users, reps):
        return self.table[users].clone()


def hand_split() -> SplitData:
    """3 users, 6 items. Train: u0-i0, u1-i1, u2-i2. Test: u0: i3 (5*), i4 (4*), i5 (2*);
    u1: i3 (3*) only (no relevant item: dropped); u2: i4 (4*)."""
    rows = [
        (0, 0, 5, TRAIN),
        (1, 1, 5, TRAIN),
        (2, 2, 5, TRAIN),
        (0, 3, 5, TEST),
        (0, 4, 4, TEST),
        (0, 5, 2, TEST),
        (1, 3, 3, TEST),
        (2, 4, 4, TEST),
    ]
    users, items, ratings, labels = map(np.array, zip(*rows, strict=True))
    return SplitData(3, 6, users, items, labels, ratings=ratings)


# every user ranks (training item masked) i5, i4, i3, then the rest
SCORES = np.array([[0, 1, 2, 3, 4, 5]] * 3, dtype=np.float32)


def log2(r):
    return math.log2(r + 1)


def test_gain_is_two_to_the_rating_above_the_threshold():
    np.testing.assert_allclose(graded_gain(np.array([4.0, 5.0, 4.5]), 4), [1.0, 3.0, 2**1.5 - 1])


def test_elliot_hand_case():
    evaluator = Evaluator(hand_split(), TEST, ks=(1, 2, 3), mode="elliot", threshold=4)
    result = evaluator.evaluate(FixedScores(SCORES))
    assert result.users.tolist() == [0, 2]  # u1 has no test item rated >= 4: dropped
    per_user = result.per_user
    # u0: ranking i5 (2*, not relevant), i4 (4*: gain 1), i3 (5*: gain 3); relevant {i3, i4}
    # u2: ranking i5, i4 (gain 1), i3; relevant {i4}
    dcg_u0 = 1 / log2(2) + 3 / log2(3)
    idcg_u0 = 3 / log2(1) + 1 / log2(2)
    np.testing.assert_allclose(per_user["NDCG@3"], [dcg_u0 / idcg_u0, (1 / log2(2)) / (1 / log2(1))])
    np.testing.assert_allclose(per_user["NDCG@2"], [(1 / log2(2)) / idcg_u0, (1 / log2(2)) / 1.0])
    np.testing.assert_allclose(per_user["NDCG@1"], [0.0, 0.0])
    np.testing.assert_allclose(per_user["Recall@2"], [1 / 2, 1.0])
    np.testing.assert_allclose(per_user["Recall@3"], [1.0, 1.0])
    np.testing.assert_allclose(per_user["HitRate@1"], [0.0, 0.0])
    np.testing.assert_allclose(per_user["HitRate@2"], [1.0, 1.0])
    np.testing.assert_allclose(per_user["Precision@2"], [1 / 2, 1 / 2])
    assert result.metrics["Recall@2"] == pytest.approx(0.75)


def test_toolbox_mode_keeps_every_user_and_binary_gains():
    result = Evaluator(hand_split(), TEST, ks=(1, 2, 3)).evaluate(FixedScores(SCORES))
    assert result.users.tolist() == [0, 1, 2]
    # u0: all three test items relevant, binary gains: ranks 1..3 all hits -> NDCG@3 = 1
    np.testing.assert_allclose(result.per_user["NDCG@3"][0], 1.0)
    np.testing.assert_allclose(result.per_user["Recall@1"], [1 / 3, 0.0, 0.0])


def test_threshold_is_configurable():
    result = Evaluator(hand_split(), TEST, ks=(3,), mode="elliot", threshold=3).evaluate(FixedScores(SCORES))
    assert result.users.tolist() == [0, 1, 2]  # u1's 3-star item now counts (gain 1)
    np.testing.assert_allclose(result.per_user["Recall@3"], [1.0, 1.0, 1.0])
    # u0's gains with threshold 3: i4 (4*) 2^2 - 1 = 3 at rank 2, i3 (5*) 2^3 - 1 = 7 at rank 3
    ndcg = (3 / log2(2) + 7 / log2(3)) / (7 / log2(1) + 3 / log2(2))
    np.testing.assert_allclose(result.per_user["NDCG@3"][0], ndcg)


def test_evaluation_mode_is_checked_and_recorded():
    cfg = TrainConfig.from_mapping({"evaluation": "elliot", "relevance_threshold": 4, "valid_metric": "Recall@20"})
    assert vars(cfg)["evaluation"] == "elliot"
    with pytest.raises(InputError, match="training.evaluation must be one of"):
        TrainConfig.from_mapping({"evaluation": "trec"})


def test_ratings_reach_the_split_from_the_inter_file(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n0\t1\t4\t2\t2\n1\t1\tbad\t3\t2\n")
    data = SplitData.from_inter(path)
    assert data.rating_matrix(TRAIN).toarray().tolist() == [[5.0, 0.0], [0.0, 0.0]]
    with pytest.raises(InputError, match="line 4 of the .inter"):
        data.rating_matrix(TEST)
