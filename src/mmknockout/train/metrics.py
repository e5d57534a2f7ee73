"""Top-K ranking metrics exactly as the study's toolbox defines them (PROTOCOL sec 4.4).

For a user with held-out set T and binary hits h_1..h_K at ranks 1..K:

* Recall@K    = sum(h) / |T|                    (denominator is |T|, not min(|T|, K))
* Precision@K = sum(h) / K
* NDCG@K      = sum_i h_i / log2(i + 1)  /  sum_{i <= min(|T|, K)} 1 / log2(i + 1)
* MAP@K       = sum_i h_i * Precision@i  /  min(|T|, K)
* HitRate@K   = 1 if any hit else 0

Each metric is computed per user and averaged uniformly over the evaluated users.
"""

from __future__ import annotations

import torch

METRICS = ("Recall", "NDCG", "Precision", "MAP", "HitRate")


def per_user_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-user metric values from a hit matrix [n_users, max(ks)] (float) and |T_u| [n_users]."""
    n_users, depth = hits.shape
    ranks = torch.arange(1, depth + 1, dtype=torch.float64, device=hits.device)
    hits = hits.to(torch.float64)
    n_relevant = n_relevant.to(torch.float64)
    discount = 1.0 / torch.log2(ranks + 1.0)
    cum_hits = hits.cumsum(dim=1)
    ideal = discount.cumsum(dim=0)
    prec_at_i = cum_hits / ranks
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        h = cum_hits[:, k - 1]
        denom = torch.clamp(n_relevant, max=k)
        out[f"Recall@{k}"] = h / n_relevant
        out[f"Precision@{k}"] = h / k
        out[f"NDCG@{k}"] = (hits[:, :k] * discount[:k]).sum(dim=1) / ideal[denom.long() - 1]
        out[f"MAP@{k}"] = (hits[:, :k] * prec_at_i[:, :k]).sum(dim=1) / denom
        out[f"HitRate@{k}"] = (h > 0).to(torch.float64)
    return out


def metric_names(ks: tuple[int, ...]) -> list[str]:
    return [f"{m}@{k}" for m in METRICS for k in ks]
