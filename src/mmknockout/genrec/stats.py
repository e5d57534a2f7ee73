"""Statistics of semantic IDs: unique-prefix rate per level, collisions, adjusted mutual information.

AMI follows Vinh, Epps and Bailey (2010) with the arithmetic-mean normaliser:

    AMI(U, V) = (MI - E[MI]) / (mean(H(U), H(V)) - E[MI]),

E[MI] under the hypergeometric model of random labelings with the same cluster sizes (natural logs).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def unique_prefix_rate(codes: np.ndarray) -> list[float]:
    """For l = 1..levels: the number of distinct length-l code prefixes over the number of items."""
    n = len(codes)
    return [len(np.unique(codes[:, :level], axis=0)) / n for level in range(1, codes.shape[1] + 1)]


def collision_stats(codes: np.ndarray) -> dict[str, int | float]:
    """Items sharing their full code tuple with another item, the number of distinct IDs and the largest group."""
    _, counts = np.unique(codes, axis=0, return_counts=True)
    return {
        "distinct_ids": int(len(counts)),
        "colliding_items": int(counts[counts > 1].sum()),
        "collision_rate": float(counts[counts > 1].sum() / len(codes)),
        "max_group": int(counts.max()),
    }


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def expected_mutual_information(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """E[MI] of two random labelings with cluster sizes ``a`` and ``b`` over ``n`` items."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    nij = np.arange(1, int(min(a.max(), b.max())) + 1, dtype=np.float64)  # every possible cell count
    total = 0.0
    for ai in a:  # one row of the contingency table at a time: [len(b), len(nij)] terms
        lo = np.maximum(1.0, ai + b - n)[:, None]
        hi = np.minimum(ai, b)[:, None]
        valid = (nij[None, :] >= lo) & (nij[None, :] <= hi)
        k = np.where(valid, nij[None, :], 1.0)
        bj = b[:, None]
        log_p = (
            gammaln(ai + 1)
            + gammaln(bj + 1)
            + gammaln(n - ai + 1)
            + gammaln(n - bj + 1)
            - gammaln(n + 1)
            - gammaln(k + 1)
            - gammaln(np.maximum(ai - k, 0) + 1)
            - gammaln(np.maximum(bj - k, 0) + 1)
            - gammaln(np.maximum(n - ai - bj + k, 0) + 1)
        )
        term = k / n * (np.log(n) + np.log(k) - np.log(ai) - np.log(bj)) * np.exp(log_p)
        total += float(np.where(valid, term, 0.0).sum())
    return total


def adjusted_mutual_info(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """AMI of two labelings of the same items (arithmetic normaliser, as scikit-learn's default)."""
    _, ia = np.unique(labels_a, return_inverse=True)
    _, ib = np.unique(labels_b, return_inverse=True)
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    n = len(ia)
    if ia.max(initial=0) == ib.max(initial=0) == 0:
        return 1.0  # both a single cluster (or empty): identical labelings
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)
    a, b = table.sum(1), table.sum(0)
    nz = table > 0
    mi = float((table[nz] / n * (np.log(table[nz] * n) - np.log(np.outer(a, b)[nz]))).sum())
    emi = expected_mutual_information(a, b, n)
    normaliser = (_entropy(a, n) + _entropy(b, n)) / 2 - emi
    eps = np.finfo(np.float64).eps
    normaliser = min(normaliser, -eps) if normaliser < 0 else max(normaliser, eps)
    return (mi - emi) / normaliser


def code_stats(codes: np.ndarray, categories: np.ndarray | None = None) -> dict:
    """A semantic-ID record: unique-prefix rate per level, collisions, AMI of the first code vs categories."""
    out: dict = {
        "items": int(len(codes)),
        "levels": int(codes.shape[1]),
        "unique_prefix_rate": unique_prefix_rate(codes),
    }
    out.update(collision_stats(codes))
    out["first_code_clusters"] = int(len(np.unique(codes[:, 0])))
    out["ami_category"] = None if categories is None else adjusted_mutual_info(codes[:, 0], categories)
    return out
