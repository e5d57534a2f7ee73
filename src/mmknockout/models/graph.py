"""Graph building blocks shared by the models: normalised adjacencies, kNN item graphs, LightGCN,
degree-sensitive edge pruning and per-edge bipartite patterns.

Graphs are built as coalesced ``torch.sparse_coo_tensor``; a fixed graph that a model multiplies
with is wrapped in a :class:`GraphOperator` (CSR, with its transpose stored for the backward pass),
which moves with ``Module.to(device)``.

Degenerate features, defined once here for every model:
* Cosine similarity uses rows scaled by ``max(||x||, eps)``, so an all-zero row has similarity 0
  with every item (itself included) instead of 0/0 = NaN.
* Ties (constant or all-zero features) are broken by the lower item index, via a stable sort, so
  the kNN graph is deterministic on every device: with all rows tied, every item links to items
  ``0..k-1`` (a "hub" graph).
* Symmetric normalisation maps a zero degree to a zero weight (never inf or NaN), so weighted
  graphs built from all-zero features are all-zero graphs: the item-item branch contributes
  nothing and training proceeds on the other signals.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .ops import BagProduct, EdgeDots, EdgeProduct, bag_product, segment_softmax

# torch flags its CSR support as beta on first use; the operations used here are stable
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

COSINE_EPS = 1e-12


def sparse_from_edges(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=False).coalesce()


def sym_normalize(adj: torch.Tensor) -> torch.Tensor:
    """D^-1/2 A D^-1/2 with D the row sums of ``adj`` (zero degree gives zero weight)."""
    adj = adj.coalesce()
    rows, cols = adj.indices()
    deg = torch.sparse.sum(adj, dim=1).to_dense()
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-30).pow(-0.5), torch.zeros_like(deg))
    values = adj.values() * inv_sqrt[rows] * inv_sqrt[cols]
    return sparse_from_edges(rows, cols, values, tuple(adj.shape))


def bipartite_adjacency(
    users: np.ndarray | torch.Tensor, items: np.ndarray | torch.Tensor, n_users: int, n_items: int
) -> torch.Tensor:
    """Symmetric (U+I)x(U+I) user-item adjacency, binary, duplicates merged."""
    u = torch.as_tensor(users, dtype=torch.long)
    i = torch.as_tensor(items, dtype=torch.long) + n_users
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    adj = sparse_from_edges(rows, cols, torch.ones(rows.numel()), (n_users + n_items, n_users + n_items))
    return sparse_from_edges(adj.indices()[0], adj.indices()[1], torch.ones(adj.values().numel()), tuple(adj.shape))


def normalized_adjacency(users, items, n_users: int, n_items: int) -> torch.Tensor:
    """The LightGCN graph: D^-1/2 A D^-1/2 of the bipartite user-item adjacency."""
    return sym_normalize(bipartite_adjacency(users, items, n_users, n_items))


class GraphOperator(nn.Module):
    """A fixed sparse matrix applied to dense features: ``op(x) = A @ x``.

    A and its transpose are stored as CSR triples (column indices, row offsets, values), so that
    neither the product nor its gradient converts or transposes anything. The matrix itself
    carries no gradient.
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        matrix = matrix.coalesce().float()
        self.shape = tuple(matrix.shape)
        for prefix, m in (("", matrix), ("t_", matrix.t().coalesce())):
            csr = m.to_sparse_csr()
            self.register_buffer(f"{prefix}cols", csr.col_indices(), persistent=False)
            self.register_buffer(f"{prefix}offsets", csr.crow_indices()[:-1].contiguous(), persistent=False)
            self.register_buffer(f"{prefix}values", csr.values(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        csr = (self.cols, self.offsets, self.values)
        if torch.is_grad_enabled() and x.requires_grad:
            return BagProduct.apply(x, *csr, self.t_cols, self.t_offsets, self.t_values)
        return bag_product(x, *csr)

    def indices(self) -> torch.Tensor:
        """(row, col) of the stored entries, row-major, as a 2 x nnz tensor."""
        lengths = torch.diff(self.offsets, append=self.offsets.new_tensor([self.nnz]))
        rows = torch.repeat_interleave(torch.arange(self.shape[0], device=self.cols.device), lengths)
        return torch.stack([rows, self.cols])

    @property
    def nnz(self) -> int:
        return self.cols.numel()

    def to_sparse_coo(self) -> torch.Tensor:
        return torch.sparse_coo_tensor(self.indices(), self.values, self.shape, check_invariants=False).coalesce()

    def to_dense(self) -> torch.Tensor:
        return self.to_sparse_coo().to_dense()


def lightgcn_propagate(adj: GraphOperator, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of the layer embeddings E^(0..L), E^(l+1) = adj @ E^(l) (He et al., SIGIR 2020)."""
    total, layer = ego, ego
    for _ in range(n_layers):
        layer = adj(layer)
        total = total + layer
    return total / (n_layers + 1)


def cosine_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(COSINE_EPS)


def knn_indices(features: torch.Tensor, k: int, chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine neighbours of every row (self included), in chunks; stable tie-breaking.

    Returns ``(indices[n, k], similarities[n, k])``.
    """
    x = cosine_normalize(features.float())
    n = x.shape[0]
    k = min(k, n)
    idx_parts, sim_parts = [], []
    for start in range(0, n, chunk_size):
        idx, values = stable_topk(x[start : start + chunk_size] @ x.T, k)
        idx_parts.append(idx)
        sim_parts.append(values)
    return torch.cat(idx_parts), torch.cat(sim_parts)


def stable_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices, values)`` of the k largest entries per row, ordered by value and then by lower
    index: exactly the first k columns of a stable descending sort, without sorting whole rows.

    ``torch.topk`` finds the candidates; a row whose k-th value is tied with entries outside them
    (constant or zero features) falls back to the full stable sort.
    """
    values, candidates = torch.topk(scores, k, dim=1)
    candidates = candidates.sort(dim=1).values  # index order first, so the stable sort breaks ties by index
    values, order = torch.sort(scores.gather(1, candidates), dim=1, descending=True, stable=True)
    indices = candidates.gather(1, order)
    tied = ((scores >= values[:, -1:]).sum(dim=1) > k).nonzero().squeeze(1)
    if tied.numel():
        full_values, full_order = torch.sort(scores.index_select(0, tied), dim=1, descending=True, stable=True)
        values[tied], indices[tied] = full_values[:, :k], full_order[:, :k]
    return indices, values


def knn_graph(features: torch.Tensor, k: int, weighted: bool, chunk_size: int = 1024) -> torch.Tensor:
    """Symmetrically normalised kNN item-item graph (n x n, sparse).

    ``weighted=True`` keeps cosine similarities as edge weights (LATTICE, MGCN, SMORE);
    ``weighted=False`` uses unit weights on the kNN indices (FREEDOM, DRAGON, PGL).
    """
    idx, sim = knn_indices(features, k, chunk_size)
    n = features.shape[0]
    rows = torch.arange(n).repeat_interleave(idx.shape[1])
    values = sim.reshape(-1) if weighted else torch.ones(rows.numel())
    return sym_normalize(sparse_from_edges(rows, idx.reshape(-1), values.float(), (n, n)))


def mixed_knn_graph(features: Mapping[str, torch.Tensor], k: int, image_weight: float) -> GraphOperator:
    r"""The frozen item graph :math:`S = \alpha S^v + (1-\alpha) S^t` of FREEDOM, DRAGON and PGL:
    unit-weight top-``k`` cosine graphs of the raw image and text features, each symmetrically
    normalised, mixed with :math:`\alpha` = ``image_weight`` (image first, as in the toolbox).

    With one modality in ``features`` (the other absent) :math:`S` is that modality's graph alone,
    as in the toolbox."""
    present = [m for m in ("image", "text") if features.get(m) is not None]
    if len(present) == 1:
        return GraphOperator(knn_graph(features[present[0]], k, weighted=False).coalesce())
    mixed = image_weight * knn_graph(features["image"], k, weighted=False) + (1 - image_weight) * knn_graph(
        features["text"], k, weighted=False
    )
    return GraphOperator(mixed.coalesce())


def neighbour_graph_adjacency(
    ids: np.ndarray, weights: np.ndarray | None, n: int, self_loops: bool = False
) -> torch.Tensor:
    """Sparse n x n matrix from padded neighbour lists (``ids == -1`` is padding)."""
    ids_t = torch.as_tensor(ids, dtype=torch.long)
    mask = ids_t >= 0
    rows = torch.arange(ids_t.shape[0]).unsqueeze(1).expand_as(ids_t)[mask]
    cols = ids_t[mask]
    vals = torch.ones(rows.numel()) if weights is None else torch.as_tensor(weights, dtype=torch.float32)[mask]
    if self_loops:
        diag = torch.arange(n)
        rows, cols, vals = torch.cat([rows, diag]), torch.cat([cols, diag]), torch.cat([vals, torch.ones(n)])
    return sparse_from_edges(rows, cols, vals, (n, n))


def bipartite_blocks(adj: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The user x item and item x user blocks of a (U+I) x (U+I) user-item adjacency (users
    first), as sparse U x I and I x U matrices; the user-user and item-item blocks are zero."""
    adj = adj.coalesce()
    rows, cols = adj.indices()
    values = adj.values()
    n_items = adj.shape[0] - n_users
    to_users = (rows < n_users) & (cols >= n_users)
    to_items = (rows >= n_users) & (cols < n_users)
    return (
        sparse_from_edges(rows[to_users], cols[to_users] - n_users, values[to_users], (n_users, n_items)),
        sparse_from_edges(rows[to_items] - n_users, cols[to_items], values[to_items], (n_items, n_users)),
    )


class BipartiteBlocks(nn.Module):
    """A user-item adjacency ``A`` as its two non-zero blocks (:func:`bipartite_blocks`):
    ``to_users`` (U x I) maps item rows to users, ``to_items`` (I x U) user rows to items, so
    ``A @ [x_u; x_i] = [to_users(x_i); to_items(x_u)]``."""

    def __init__(self, adj: torch.Tensor, n_users: int) -> None:
        super().__init__()
        to_users, to_items = bipartite_blocks(adj, n_users)
        self.to_users, self.to_items = GraphOperator(to_users), GraphOperator(to_items)


class DegreeSensitivePruning(nn.Module):
    r"""Degree-sensitive edge pruning of the user-item graph (FREEDOM, PGL's local principal graph).

    :meth:`sample` draws a fraction of the training edges without replacement, edge :math:`(u, i)`
    with probability :math:`\propto 1/\sqrt{d_u d_i}` (torch global RNG), and returns the
    symmetrically normalised graph of the kept edges.
    """

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.register_buffer("edge_users", users)
        self.register_buffer("edge_items", items)
        deg_u = torch.bincount(users, minlength=n_users).float()
        deg_i = torch.bincount(items, minlength=n_items).float()
        self.register_buffer("edge_prob", (deg_u[users] * deg_i[items]).rsqrt())

    def sample(self, keep: float) -> GraphOperator:
        """The normalised graph of ``int(E * keep)`` drawn edges, on the edges' device."""
        n_keep = int(self.edge_prob.numel() * keep)
        kept = torch.multinomial(self.edge_prob, n_keep, replacement=False)
        adj = normalized_adjacency(self.edge_users[kept], self.edge_items[kept], self.n_users, self.n_items)
        return GraphOperator(adj).to(self.edge_users.device)


class BipartiteEdges(nn.Module):
    """The E distinct training pairs ``(u, i)`` as a sparse U x I pattern, stored in CSR both ways.

    Per-edge values are always given in *edge order*: user-major, items ascending within a user
    (the order of the sorted pair codes). ``by_user(v)`` is the U x I matrix with those values,
    ``by_item(v)`` its I x U transpose (rows item-major, through the stored permutation
    ``item_order``), so products with per-edge values never gather E x d rows.
    """

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        order = torch.argsort(items * n_users + users)  # item-major position -> edge index
        self.register_buffer("users", users, persistent=False)  # softmax groups
        self.register_buffer("items", items, persistent=False)
        self.register_buffer("item_order", order, persistent=False)
        # CSR structure with int32 indices (what the sparse kernels use; saves a conversion per call)
        self.register_buffer("user_ptr", self._pointers(users, n_users), persistent=False)
        self.register_buffer("user_cols", items.int(), persistent=False)
        self.register_buffer("item_ptr", self._pointers(items, n_items), persistent=False)
        self.register_buffer("item_cols", users[order].int(), persistent=False)

    @staticmethod
    def _pointers(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
        return torch.cat([rows.new_zeros(1), torch.bincount(rows, minlength=n_rows).cumsum(0)]).int()

    def by_user(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            self.user_ptr, self.user_cols, values, (self.n_users, self.n_items), check_invariants=False
        )

    def by_item(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            self.item_ptr,
            self.item_cols,
            values.index_select(0, self.item_order),
            (self.n_items, self.n_users),
            check_invariants=False,
        )

    def dots(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``<a[u_e], b[i_e]>`` per edge (sampled dense product; no E x d temporaries)."""
        pattern = self.by_user(a.new_zeros(self.users.numel()))
        return torch.sparse.sampled_addmm(pattern, a, b.t()).values()

    @staticmethod
    def product(matrix: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """``base + matrix @ x``. Without ``base`` the product is written in place into an
        uninitialised tensor (``beta=0`` ignores its contents, as ``torch.addmm`` documents), which
        skips the zero fill and the copy of ``matrix @ x``."""
        if base is None:
            return x.new_empty(matrix.shape[0], x.shape[1]).addmm_(matrix, x, beta=0)
        return torch.addmm(base, matrix, x)

    def scores(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Differentiable ``<a[u_e], b[i_e]>`` for user rows ``a`` [U, d] and item rows ``b`` [I, d]."""
        return EdgeDots.apply(a, b, self)

    def to_users(self, values: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """``base[u] + sum over edges (u, i) of values_e * x[i]`` for item rows ``x`` [I, d]."""
        return EdgeProduct.apply(values, x, base, self, True)

    def to_items(self, values: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """``base[i] + sum over edges (u, i) of values_e * x[u]`` for user rows ``x`` [U, d]."""
        return EdgeProduct.apply(values, x, base, self, False)

    def softmax_per_user(self, scores: torch.Tensor) -> torch.Tensor:
        return segment_softmax(scores, self.users, self.n_users)

    def softmax_per_item(self, scores: torch.Tensor) -> torch.Tensor:
        return segment_softmax(scores, self.items, self.n_items)
