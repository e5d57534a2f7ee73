"""Auxiliary graphs from the training split only (never validation or test interactions).

* User-user co-interaction graph (DualGNN, DRAGON): weight = number of training items two users
  share; every user keeps its top ``k`` (200 in the study) neighbours by count.
* Item-item co-interaction graph (DAMRS): weight = number of training users two items share;
  pairs with fewer than ``min_count`` (2) common users are dropped; top ``k`` (2) per item.

Both are computed as sparse products (R·Rᵀ, Rᵀ·R) in row blocks, never as dense matrices.
Neighbours are ordered by count (descending), ties by the lower id, so output is deterministic.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .dataset import NeighbourGraph, SplitData, item_count


def topk_per_row(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k column ids and values of every row of a sparse matrix; -1/0 pad short rows."""
    m = m.tocoo()
    order = np.lexsort((m.col, -m.data, m.row))
    rows, cols, vals = m.row[order], m.col[order], m.data[order]
    starts = np.searchsorted(rows, np.arange(m.shape[0]))
    rank = np.arange(rows.size) - starts[rows]
    keep = rank < k
    ids = np.full((m.shape[0], k), -1, dtype=np.int64)
    weights = np.zeros((m.shape[0], k), dtype=np.float32)
    ids[rows[keep], rank[keep]] = cols[keep]
    weights[rows[keep], rank[keep]] = vals[keep]
    return ids, weights


def cooccurrence_topk(r: sp.csr_matrix, k: int, min_count: int = 1, block: int = 4096) -> NeighbourGraph:
    """Top-k neighbours of every row of ``r`` by the number of shared columns (self excluded)."""
    r = r.tocsr().astype(np.float32)
    rt = r.T.tocsc()
    ids, weights = [], []
    for start in range(0, r.shape[0], block):
        c = (r[start : start + block] @ rt).tocoo()
        keep = (c.col != c.row + start) & (c.data >= min_count)
        c = sp.csr_matrix((c.data[keep], (c.row[keep], c.col[keep])), shape=c.shape)
        i, w = topk_per_row(c, k)
        ids.append(i)
        weights.append(w)
    return NeighbourGraph(np.concatenate(ids), np.concatenate(weights))


def user_graph(data: SplitData, k: int = 200) -> NeighbourGraph:
    return cooccurrence_topk(data.train_matrix, k)


def item_graph(data: SplitData, k: int = 2, min_count: int = 2) -> NeighbourGraph:
    return cooccurrence_topk(data.train_matrix.T.tocsr(), k, min_count=min_count)


def save_graph(graph: NeighbourGraph, path) -> None:
    from ..io import write_npz

    write_npz(path, ids=graph.ids, weights=graph.weights)


def graphs_step(
    *, inter: str, user: str, item: str, user_k: int, item_k: int, item_min_count: int, stats: str | None = None
) -> None:
    """Workflow step: the user-user and item-item co-interaction graphs of a split's training part
    (over every item of the dataset: ``stats.json``'s count when given, else contiguous ids)."""
    data = SplitData.from_inter(inter, None if stats is None else item_count(stats))
    save_graph(user_graph(data, k=user_k), user)
    save_graph(item_graph(data, k=item_k, min_count=item_min_count), item)
