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

import numpy as np
import scipy.sparse as sp
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


# Elliot's evaluation (Pomo et al. 2025): an item is relevant when its rating reaches the threshold
# (``relevance_threshold``, 4); users without a relevant held-out item are dropped; nDCG is graded with
# gain 2^(r - threshold + 1) - 1 (4 stars -> 1, 5 stars -> 3) and the ideal DCG of the user's own sorted
# gains. Recall (hits / relevant), Precision, MAP and HitRate are the binary metrics above over the
# relevant items.
EVALUATION_MODES = ("toolbox", "elliot")


def graded_gain(ratings: np.ndarray, threshold: float) -> np.ndarray:
    """Elliot's discounted relevance of a rating: 2^(r - threshold + 1) - 1 (positive when relevant)."""
    return np.power(2.0, np.asarray(ratings, dtype=np.float64) - threshold + 1.0) - 1.0


def relevant_gains(ratings: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """The graded gains of the entries rated at least ``threshold``; every other entry removed."""
    out = ratings.tocsr().astype(np.float64)
    out.data = np.where(out.data >= threshold, graded_gain(out.data, threshold), 0.0)
    out.eliminate_zeros()
    return out


def ideal_gains(gains: sp.csr_matrix, rows: np.ndarray, depth: int) -> np.ndarray:
    """[len(rows), depth]: each row's gains sorted in descending order, zero-padded (for the ideal DCG)."""
    part = gains[rows].tocsr()
    row_of = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
    order = np.lexsort((-part.data, row_of))
    rank = np.arange(order.size) - part.indptr[row_of[order]]
    keep = rank < depth
    out = np.zeros((part.shape[0], depth))
    out[row_of[order][keep], rank[keep]] = part.data[order][keep]
    return out


def elliot_per_user_metrics(
    hit_gains: torch.Tensor, ideal: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Per-user metrics from the gain at every rank [n_users, max(ks)] (0 where the item is not relevant),
    the users' ideal sorted gains [n_users, max(ks)] and their numbers of relevant items."""
    hit_gains = hit_gains.to(torch.float64)
    out = per_user_metrics(hit_gains > 0, n_relevant, ks)
    ranks = torch.arange(1, hit_gains.shape[1] + 1, dtype=torch.float64, device=hit_gains.device)
    discount = 1.0 / torch.log2(ranks + 1.0)
    for k in ks:
        ideal_dcg = (ideal[:, :k].to(torch.float64) * discount[:k]).sum(dim=1)
        out[f"NDCG@{k}"] = (hit_gains[:, :k] * discount[:k]).sum(dim=1) / ideal_dcg
    return out
