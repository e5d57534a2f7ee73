import math

import numpy as np
import pytest
import torch

from mmknockout.data.dataset import TEST, VALID, SplitData
from mmknockout.models.base import Recommender
from mmknockout.train.evaluator import Evaluator
from mmknockout.train.metrics import per_user_metrics


def brute_force(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    hits = [1 if item in relevant else 0 for item in ranked[:k]]
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    prec_i = [sum(hits[: i + 1]) / (i + 1) for i in range(k)]
    return {
        "Recall": sum(hits) / len(relevant),
        "Precision": sum(hits) / k,
        "NDCG": sum(h / math.log2(i + 2) for i, h in enumerate(hits)) / idcg,
        "MAP": sum(h * p for h, p in zip(hits, prec_i, strict=True)) / min(len(relevant), k),
        "HitRate": float(any(hits)),
    }


def test_per_user_metrics_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        relevant = set(rng.choice(30, size=rng.integers(1, 8), replace=False).tolist())
        ranked = rng.permutation(30).tolist()
        hits = torch.tensor([[float(i in relevant) for i in ranked[:10]]])
        got = per_user_metrics(hits, torch.tensor([len(relevant)]), (5, 10))
        for k in (5, 10):
            for name, value in brute_force(ranked, relevant, k).items():
                assert abs(got[f"{name}@{k}"].item() - value) < 1e-12, (name, k)


class FixedScores(Recommender):
    modalities = ()

    def __init__(self, data, scores):
        super().__init__(data, {}, {})
        self.scores = scores

    def representations(self):
        return (self.scores,)

    def score(self, users, reps):
        return reps[0][users].clone()


def test_evaluator_masks_train_items_and_averages_over_split_users():
    # user 0: train {0}, valid {1}, test {2}; user 1: train {1}, valid {3}; user 2 only train+test
    users = np.array([0, 0, 0, 1, 1, 2, 2, 1])
    items = np.array([0, 1, 2, 1, 3, 4, 0, 2])
    labels = np.array([0, 1, 2, 0, 1, 0, 2, 0])
    data = SplitData(3, 5, users, items, labels)
    rng = np.random.default_rng(1)
    scores = torch.tensor(rng.normal(size=(3, 5)))
    model = FixedScores(data, scores)
    for label in (VALID, TEST):
        ev = Evaluator(data, label, ks=(1, 3))
        got = ev.evaluate(model)
        target_users = sorted(set(users[labels == label].tolist()))
        assert got.users.tolist() == target_users
        expected = {}
        for u in target_users:
            s = scores[u].numpy().copy()
            s[items[(users == u) & (labels == 0)]] = -np.inf
            ranked = np.argsort(-s, kind="stable").tolist()
            rel = set(items[(users == u) & (labels == label)].tolist())
            for k in (1, 3):
                for name, v in brute_force(ranked, rel, k).items():
                    expected.setdefault(f"{name}@{k}", []).append(v)
        for name, values in expected.items():
            assert abs(got.metrics[name] - np.mean(values)) < 1e-12, name


LOG3 = math.log2(3)
# (hits at ranks 1..5, |T|) -> hand-computed values at K = 2, 3 and 5
HAND_CASES = [
    # more relevant items (5) than K: Recall divides by |T|, NDCG and MAP by min(|T|, K)
    (
        [1, 0, 1, 0, 0],
        5,
        {
            "Recall@3": 2 / 5,
            "Precision@3": 2 / 3,
            "NDCG@3": (1 + 1 / 2) / (1 + 1 / LOG3 + 1 / 2),
            "MAP@3": (1 + 2 / 3) / 3,
            "HitRate@3": 1.0,
            "Recall@2": 1 / 5,
            "NDCG@2": 1 / (1 + 1 / LOG3),
            "MAP@2": 1 / 2,
        },
    ),
    # one relevant item found at rank 2
    (
        [0, 1, 0, 0, 0],
        1,
        {"Recall@2": 1.0, "Precision@2": 1 / 2, "NDCG@2": 1 / LOG3, "MAP@2": 1 / 2, "HitRate@2": 1.0, "MAP@5": 1 / 2},
    ),
    # ten relevant items, the top five all hits: perfect NDCG/MAP/Precision, Recall one half
    (
        [1, 1, 1, 1, 1],
        10,
        {"Recall@5": 1 / 2, "Precision@5": 1.0, "NDCG@5": 1.0, "MAP@5": 1.0, "HitRate@5": 1.0, "Recall@2": 2 / 10},
    ),
    # a hit only below the cut-off counts nowhere at K = 3
    (
        [0, 0, 0, 1, 0],
        4,
        {
            "Recall@3": 0.0,
            "NDCG@3": 0.0,
            "MAP@3": 0.0,
            "HitRate@3": 0.0,
            "Recall@5": 1 / 4,
            "HitRate@5": 1.0,
            "MAP@5": (1 / 4) / 4,
            "NDCG@5": (1 / math.log2(5)) / (1 + 1 / LOG3 + 1 / 2 + 1 / math.log2(5)),
        },
    ),
]


def test_per_user_metrics_match_hand_computed_values():
    hits = torch.tensor([case[0] for case in HAND_CASES], dtype=torch.float32)
    n_relevant = torch.tensor([case[1] for case in HAND_CASES])
    got = per_user_metrics(hits, n_relevant, (2, 3, 5))
    for user, (_, _, expected) in enumerate(HAND_CASES):
        for name, value in expected.items():
            assert got[name][user].item() == pytest.approx(value, abs=1e-12), (user, name)


def test_metrics_are_bounded_and_ordered_in_k():
    rng = np.random.default_rng(5)
    hits = torch.tensor(rng.random((200, 20)) < 0.3, dtype=torch.float32)
    n_relevant = torch.tensor(rng.integers(1, 30, size=200))
    n_relevant = torch.maximum(n_relevant, hits.sum(1).long())  # never more hits than relevant items
    got = per_user_metrics(hits, n_relevant, (5, 10, 20))
    for name, values in got.items():
        assert ((values >= 0) & (values <= 1 + 1e-12)).all(), name
    for metric in ("Recall", "HitRate"):
        assert (got[f"{metric}@5"] <= got[f"{metric}@10"]).all() and (got[f"{metric}@10"] <= got[f"{metric}@20"]).all()
