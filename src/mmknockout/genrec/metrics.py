"""Next-item metrics of generated rankings (one target item per user).

With r the 1-based rank of the target among the generated items (r = inf when it is not generated):

* MRR@K     = 1 / r            if r <= K else 0
* NDCG@K    = 1 / log2(r + 1)  if r <= K else 0   (the ideal DCG of one target is 1)
* HitRate@K = Recall@K = 1     if r <= K else 0

averaged uniformly over users; the per-user values come from the ranking metrics of
:mod:`mmknockout.train.metrics` (a single relevant item), MRR is added here.
"""

from __future__ import annotations

import numpy as np
import torch

from ..train.metrics import per_user_metrics

NAMES = ("MRR", "NDCG", "HitRate", "Recall")


def per_user(predictions: np.ndarray, targets: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-user metrics of ``predictions`` [n, >= max(ks)] (item ids, best first) for ``targets`` [n]."""
    depth = max(ks)
    if predictions.shape[1] < depth:
        raise ValueError(f"{predictions.shape[1]} generated items per user, the metrics need {depth}")
    hits = predictions[:, :depth] == targets[:, None]
    ranked = per_user_metrics(torch.as_tensor(hits), torch.ones(len(targets)), ks)
    ranks = np.arange(1, depth + 1)
    out = {}
    for k in ks:
        out[f"MRR@{k}"] = (hits[:, :k] / ranks[:k]).sum(1)
        for name in ("NDCG", "HitRate", "Recall"):
            out[f"{name}@{k}"] = ranked[f"{name}@{k}"].numpy()
    return out


def summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v.mean()) if len(v) else 0.0 for k, v in values.items()}


def hits_by_part(
    predictions: np.ndarray, targets: np.ndarray, parts: dict[str, np.ndarray], k: int = 5
) -> dict[str, float]:
    """Hits@k when only part of the ID must match: for each part (a code block of every item,
    [n_items, width]) the share of users with a top-k item whose part equals the target's."""
    top = predictions[:, :k]
    out = {}
    for name, codes in parts.items():
        same = (codes[np.maximum(top, 0)] == codes[targets][:, None, :]).all(axis=2) & (top >= 0)
        out[name] = float(same.any(axis=1).mean()) if len(top) else 0.0
    return out
