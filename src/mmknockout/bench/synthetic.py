"""Baby-shaped synthetic data in memory: planted item clusters, Zipf popularity, per-user split.

Default shape = Amazon Baby after the 5-core: 19,445 users, 7,050 items, 160,792 interactions,
384-d text and 4096-d image features. ``scale`` multiplies the interactions (users and items stay),
to measure how cost grows with the number of interactions.
"""
from __future__ import annotations

import numpy as np

from ..data import graphs
from ..data.dataset import SplitData

BABY = {"n_users": 19445, "n_items": 7050, "n_interactions": 160792, "text_dim": 384, "image_dim": 4096}


def synthetic_split(n_users: int, n_items: int, n_interactions: int, seed: int = 0, n_clusters: int = 32) -> tuple[SplitData, np.ndarray]:
    """(split, item cluster ids); every user has at least 5 interactions and at most half the items."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, n_clusters, n_items)
    popularity = rng.permutation(np.arange(1, n_items + 1, dtype=float) ** -0.8)
    weight = rng.lognormal(0.0, 1.0, n_users)
    extra = n_interactions - 5 * n_users
    per_user = 5 + np.floor(weight / weight.sum() * extra).astype(int)
    per_user[: n_interactions - per_user.sum()] += 1
    per_user = np.minimum(per_user, n_items // 2)
    users = np.repeat(np.arange(n_users), per_user)
    favourite = rng.integers(0, n_clusters, n_users)[users]
    # three candidate draws per slot from the favourite cluster's boosted popularity; duplicates dropped
    weights = popularity[None, :] * np.where(cluster[None, :] == np.arange(n_clusters)[:, None], 8.0, 1.0)
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    draws = rng.random((3, users.size))
    items = np.empty((3, users.size), dtype=np.int64)
    for c in range(n_clusters):  # loop over clusters, vectorised over all users who favour it
        idx = np.flatnonzero(favourite == c)
        items[:, idx] = np.searchsorted(cdf[c], draws[:, idx])
    items = np.minimum(items, n_items - 1)
    pairs = np.unique(np.stack([np.tile(users, 3), items.reshape(-1)], axis=1), axis=0)
    order = rng.permutation(len(pairs))
    pairs = pairs[order[np.argsort(pairs[order, 0], kind="stable")]]  # shuffled within each user
    have = np.bincount(pairs[:, 0], minlength=n_users)
    rank = np.arange(len(pairs)) - np.repeat(np.cumsum(have) - have, have)
    pairs = pairs[rank < per_user[pairs[:, 0]]]  # each user keeps its planned number of items
    u, i = pairs[:, 0], pairs[:, 1]
    n = np.bincount(u, minlength=n_users)
    rank = np.arange(u.size) - np.repeat(np.cumsum(n) - n, n)
    n_u = n[u]
    holdout = np.where(n_u < 10, 2, np.floor(0.2 * n_u).astype(int))
    n_valid = np.where(n_u < 10, 1, holdout // 2)
    train_size = n_u - holdout
    labels = np.where(rank < train_size, 0, np.where(rank < train_size + n_valid, 1, 2))
    data = SplitData(n_users, n_items, u, i, labels, name="synthetic")
    return data, cluster


def synthetic_features(cluster: np.ndarray, text_dim: int, image_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    k = cluster.max() + 1
    text = rng.normal(size=(k, text_dim))[cluster] + 0.3 * rng.normal(size=(cluster.size, text_dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = np.maximum(0, 0.3 * rng.normal(size=(k, image_dim))[cluster] + rng.normal(size=(cluster.size, image_dim)))
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def baby_like(scale: float = 1.0, seed: int = 0, shape: dict[str, int] | None = None) -> tuple[SplitData, dict[str, np.ndarray]]:
    """Baby-shaped data (or ``shape``, same keys as :data:`BABY`) with ``scale`` x the interactions."""
    shape = shape or BABY
    data, cluster = synthetic_split(shape["n_users"], shape["n_items"], int(shape["n_interactions"] * scale), seed)
    data.user_graph = graphs.user_graph(data, k=200)
    data.item_graph = graphs.item_graph(data, k=2, min_count=2)
    return data, synthetic_features(cluster, shape["text_dim"], shape["image_dim"], seed)
