import math

import numpy as np
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
        "MAP": sum(h * p for h, p in zip(hits, prec_i)) / min(len(relevant), k),
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
