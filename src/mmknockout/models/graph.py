"""Graph building blocks shared by the models: normalised adjacencies, kNN item graphs, LightGCN.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# torch flags its CSR support as beta on first use; the operations used here are stable
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

COSINE_EPS = 1e-12


def sparse_from_edges(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=False).coalesce()


def sym_normalize(adj: torch.Tensor) -> torch.Tensor:
    """D^-1/2 A D^-1/2 with D the row sums of ``adj`` (zero degree gives zero weight)."""
    adj = adj.coalesce()
    rows, cols = adj.indices()
    deg = torch.sparse.sum(adj, dim=1).to_dense()
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-30).pow(-0.5), torch.zeros_like(deg))
    values = adj.values() * inv_sqrt[rows] * inv_sqrt[cols]
    return sparse_from_edges(rows, cols, values, tuple(adj.shape))


def bipartite_adjacency(users: np.ndarray | torch.Tensor, items: np.ndarray | torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
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


def _bag_product(x: torch.Tensor, cols: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``A @ x`` for a CSR matrix given as (column indices, row offsets, values): one weighted
    bag-sum per row. ``embedding_bag`` runs a fused gather-and-sum kernel, 2-3x faster than torch's
    CSR-times-dense product on CPU, with a fixed summation order per row."""
    return F.embedding_bag(cols, x.contiguous(), offsets, mode="sum", per_sample_weights=values.to(x.dtype))


class _BagProduct(torch.autograd.Function):
    """``A @ x`` with gradient ``A^T @ g`` (the transpose stored the same way); for x only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *csr: torch.Tensor) -> torch.Tensor:
        ctx.transpose = csr[3:]
        return _bag_product(x, *csr[:3])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (_bag_product(grad, *ctx.transpose),) + (None,) * 6


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
            return _BagProduct.apply(x, *csr, self.t_cols, self.t_offsets, self.t_values)
        return _bag_product(x, *csr)

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
        idx, values = stable_topk(x[start:start + chunk_size] @ x.T, k)
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


def neighbour_graph_adjacency(ids: np.ndarray, weights: np.ndarray | None, n: int, self_loops: bool = False) -> torch.Tensor:
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


def sparse_dropout_edges(adj: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Sub-graph of ``adj`` keeping the edges where the boolean mask ``keep`` is true."""
    rows, cols = adj.indices()
    return sparse_from_edges(rows[keep], cols[keep], adj.values()[keep], tuple(adj.shape))


def bipartite_blocks(adj: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The user x item and item x user blocks of a (U+I) x (U+I) user-item adjacency (users
    first), as sparse U x I and I x U matrices; the user-user and item-item blocks are zero."""
    adj = adj.coalesce()
    rows, cols = adj.indices()
    values = adj.values()
    n_items = adj.shape[0] - n_users
    to_users = (rows < n_users) & (cols >= n_users)
    to_items = (rows >= n_users) & (cols < n_users)
    return (sparse_from_edges(rows[to_users], cols[to_users] - n_users, values[to_users], (n_users, n_items)),
            sparse_from_edges(rows[to_items] - n_users, cols[to_items], values[to_items], (n_items, n_users)))


class BipartiteBlocks(nn.Module):
    """A user-item adjacency ``A`` as its two non-zero blocks (:func:`bipartite_blocks`):
    ``to_users`` (U x I) maps item rows to users, ``to_items`` (I x U) user rows to items, so
    ``A @ [x_u; x_i] = [to_users(x_i); to_items(x_u)]``."""

    def __init__(self, adj: torch.Tensor, n_users: int) -> None:
        super().__init__()
        to_users, to_items = bipartite_blocks(adj, n_users)
        self.to_users, self.to_items = GraphOperator(to_users), GraphOperator(to_items)


NORM_EPS = 1e-12  # F.normalize's default


class _RowNormalize(torch.autograd.Function):
    """``F.normalize(x, dim=1)`` with a one-pass backward ``(g - y (g . y)) / max(||x||, eps)``.

    Same values as ``F.normalize``; where the norm is clamped to eps the gradient is ``g / eps``,
    as there. Autograd's own graph for ``F.normalize`` allocates several full-size temporaries.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        scale = norm.clamp_min(NORM_EPS)
        y = x / scale
        ctx.save_for_backward(y, scale, norm > NORM_EPS)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        y, scale, above = ctx.saved_tensors
        along = torch.linalg.vecdot(grad, y, dim=1).unsqueeze(1) * above
        return torch.addcmul(grad, y, along, value=-1).div_(scale)


def row_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (``F.normalize(x, dim=1)``), cheaper to differentiate."""
    return _RowNormalize.apply(x) if torch.is_grad_enabled() and x.requires_grad else F.normalize(x)
