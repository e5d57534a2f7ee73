"""Custom autograd kernels: same values as the plain torch expressions, cheaper gradients.

Every :class:`torch.autograd.Function` of the models lives here, each checked against numerical
gradients (``torch.autograd.gradcheck``, float64) in ``tests/test_ops.py``:

* :class:`BagProduct` -- ``A @ x`` for a fixed CSR matrix, gradient ``A^T @ g``;
* :class:`RowNormalize` -- ``F.normalize(x, dim=1)`` with a one-pass backward;
* :class:`MeanSquare` -- ``x.pow(2).mean()`` with a one-pass backward;
* :class:`GatherRows` -- ``table[rows]`` into a reused :class:`Scratch` block;
* :class:`SegmentSoftmax` -- softmax of edge scores within groups;
* :class:`EdgeDots`, :class:`EdgeProduct` -- per-edge dot products and per-edge weighted
  aggregation on a bipartite pattern (:class:`.graph.BipartiteEdges`);
* :class:`RowExpSum` -- row sums of a detached ``exp(z y^T / tau)`` given in blocks;
* :class:`BoundedLogSumExp` -- ``log sum_j exp(a_i . b_j)`` for small logits;
* :class:`FixedProjection` -- ``x @ w`` for a fixed ``x``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

if TYPE_CHECKING:
    from .graph import BipartiteEdges

#: F.normalize's default eps
NORM_EPS = 1e-12
#: anchor rows per block of the anchors x candidates logits of BoundedLogSumExp
ROW_BLOCK = 256


def bag_product(x: torch.Tensor, cols: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``A @ x`` for a CSR matrix given as (column indices, row offsets, values): one weighted
    bag-sum per row. ``embedding_bag`` runs a fused gather-and-sum kernel, 2-3x faster than torch's
    CSR-times-dense product on CPU, with a fixed summation order per row."""
    return F.embedding_bag(cols, x.contiguous(), offsets, mode="sum", per_sample_weights=values.to(x.dtype))


class BagProduct(torch.autograd.Function):
    """``A @ x`` with gradient ``A^T @ g`` (the transpose stored the same way); for x only.

    Inputs: ``x``, then ``A``'s (cols, offsets, values), then those of ``A^T``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, *csr: torch.Tensor) -> torch.Tensor:
        ctx.transpose = csr[3:]
        return bag_product(x, *csr[:3])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (bag_product(grad, *ctx.transpose),) + (None,) * 6


class RowNormalize(torch.autograd.Function):
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
    return RowNormalize.apply(x) if torch.is_grad_enabled() and x.requires_grad else F.normalize(x)


class MeanSquare(torch.autograd.Function):
    """``x.pow(2).mean()`` with a one-pass backward ``2 x g / n``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        flat = x.reshape(-1)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return x * (2 * grad / x.numel())


def mean_square(x: torch.Tensor) -> torch.Tensor:
    return MeanSquare.apply(x)


class Scratch:
    """A reused flat tensor lent out as ``rows x cols`` blocks.

    On CPU a fresh tensor of tens of MB per batch costs more in page faults than filling it; a
    block is only read by the batch that wrote it (autograd flags a reuse before its backward).
    """

    def __init__(self) -> None:
        self.flat: torch.Tensor | None = None

    def block(self, rows: int, like: torch.Tensor) -> torch.Tensor:
        need = rows * like.shape[1]
        flat = self.flat
        if flat is None or flat.numel() < need or flat.device != like.device or flat.dtype != like.dtype:
            flat = self.flat = like.new_empty(need)
        return flat[:need].view(rows, like.shape[1])

    def gather(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``table[rows]`` written into a block (no gradient; see :class:`GatherRows`)."""
        return torch.index_select(table, 0, rows, out=self.block(rows.numel(), table))


class GatherRows(torch.autograd.Function):
    """``table[rows]`` for distinct ``rows``, written into a :class:`Scratch` block; the gradient
    is ``grad`` at ``rows`` and zero elsewhere, as for plain indexing."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor, scratch: Scratch) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.table_shape = table.shape
        return scratch.gather(table, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (rows,) = ctx.saved_tensors
        return grad.new_zeros(ctx.table_shape).index_copy_(0, rows, grad), None, None


class SegmentSoftmax(torch.autograd.Function):
    """Softmax of edge ``scores`` within each group (edges sharing a target node), vectorised.

    The group maximum is subtracted for stability (it cancels exactly); an empty denominator
    cannot occur because every edge belongs to its own group, and 1e-16 guards the sum. The
    gradient is the softmax Jacobian, ``alpha * (g - sum_group(alpha * g))``.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
        top = torch.full((n_groups,), float("-inf"), dtype=scores.dtype, device=scores.device)
        top = top.scatter_reduce(0, groups, scores, reduce="amax", include_self=True)
        ex = (scores - top.index_select(0, groups)).exp_()
        total = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add_(0, groups, ex)
        alpha = ex.div_(total.add_(1e-16).index_select(0, groups))
        ctx.save_for_backward(alpha, groups)
        ctx.n_groups = n_groups
        return alpha

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        alpha, groups = ctx.saved_tensors
        weighted = alpha * grad
        total = torch.zeros(ctx.n_groups, dtype=grad.dtype, device=grad.device).index_add_(0, groups, weighted)
        return torch.addcmul(weighted, alpha, total.index_select(0, groups), value=-1), None, None


def segment_softmax(scores: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    return SegmentSoftmax.apply(scores, groups, n_groups)


class EdgeDots(torch.autograd.Function):
    """``s_e = <a[u_e], b[i_e]>`` on the edges of a :class:`.graph.BipartiteEdges`; gradients
    ``S_g @ b`` and ``S_g^T @ a`` with ``S_g`` the pattern carrying the incoming per-edge gradient."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, edges: BipartiteEdges) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.edges = edges
        return edges.dots(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        a, b = ctx.saved_tensors
        edges = ctx.edges
        grad_a = edges.product(edges.by_user(grad), b) if ctx.needs_input_grad[0] else None
        grad_b = edges.product(edges.by_item(grad), a) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None


class EdgeProduct(torch.autograd.Function):
    """``base + A_v @ x`` with per-edge ``values`` towards users (``A_v`` is U x I) or items (its
    transpose); gradients for ``x`` (the transposed product), ``values`` (``<grad[target],
    x[source]>`` per edge) and ``base`` (``grad`` itself)."""

    @staticmethod
    def forward(
        ctx, values: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None, edges: BipartiteEdges, to_users: bool
    ) -> torch.Tensor:
        ctx.save_for_backward(values, x)
        ctx.edges, ctx.to_users = edges, to_users
        return edges.product(edges.by_user(values) if to_users else edges.by_item(values), x, base)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        values, x = ctx.saved_tensors
        edges, to_users = ctx.edges, ctx.to_users
        grad = grad.contiguous()
        grad_values = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_values = edges.dots(grad, x) if to_users else edges.dots(x, grad)
        if ctx.needs_input_grad[1]:
            grad_x = edges.product(edges.by_item(values) if to_users else edges.by_user(values), grad)
        return grad_values, grad_x, grad if ctx.needs_input_grad[2] else None, None, None


class RowExpSum(torch.autograd.Function):
    """``total_i = sum_j E_ij`` for ``E = exp(z @ y.T / temperature)``, given E (detached) as
    consecutive row blocks.

    The gradient forms no new B x n matrix: with ``w = g / temperature``,
    ``dz = diag(w) E y`` and ``dy = E^T diag(w) z``.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor, blocks: list[torch.Tensor], temperature: float) -> torch.Tensor:
        ctx.save_for_backward(z, y)
        ctx.blocks, ctx.temperature = blocks, temperature
        return torch.cat([e.sum(1) for e in blocks])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        z, y = ctx.saved_tensors
        w = (grad / ctx.temperature).unsqueeze(1)
        dz = torch.cat([e @ y for e in ctx.blocks]) * w if ctx.needs_input_grad[0] else None
        dy = None
        if ctx.needs_input_grad[1]:
            zw, dy, start = z * w, torch.zeros_like(y), 0
            for e in ctx.blocks:
                dy.addmm_(e.T, zw[start : start + e.shape[0]])
                start += e.shape[0]
        return dz, dy, None, None


class BoundedLogSumExp(torch.autograd.Function):
    """``lse_i = log sum_j exp(a_i . b_j)`` for logits of small magnitude (e.g. cosines / tau, at
    most 5), so no max shift is needed. The gradient ``dA = diag(w) E B``, ``dB = E^T diag(w) A``
    with ``w = g / s`` recomputes ``E = exp(a b^T)`` block by block rather than keeping it (a 2,048
    x 19,445 block is 159 MB; the recomputation repeats the same operations, so the values are the
    same); the products are written with the wide dimension last (``(B^T E^T)^T``), which MKL runs faster."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sums = torch.cat([_exp_block(a, b, s).sum(1) for s in range(0, a.shape[0], ROW_BLOCK)])
        ctx.save_for_backward(a, b, sums)
        return sums.log()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b, sums = ctx.saved_tensors
        w = (grad / sums).unsqueeze(1)
        need_a, need_b = ctx.needs_input_grad[:2]
        b_t = b.T.contiguous() if need_a else None
        aw_t = (a * w).T if need_b else None
        da = a.new_empty(a.shape) if need_a else None
        db_t = b.new_zeros(b.shape[1], b.shape[0]) if need_b else None
        for s in range(0, a.shape[0], ROW_BLOCK):
            e = _exp_block(a, b, s)
            if need_a:
                da[s : s + ROW_BLOCK] = (b_t @ e.T).T * w[s : s + ROW_BLOCK]
            if need_b:
                db_t.addmm_(aw_t[:, s : s + ROW_BLOCK], e)
        return da, None if db_t is None else db_t.T


def _exp_block(a: torch.Tensor, b: torch.Tensor, start: int) -> torch.Tensor:
    """Rows ``start:start + ROW_BLOCK`` of ``exp(a b^T)``."""
    return torch.mm(a[start : start + ROW_BLOCK], b.T).exp_()


class FixedProjection(torch.autograd.Function):
    """``x @ w`` for a fixed feature matrix x (no gradient); ``dw = (g^T x)^T``, which MKL runs
    faster than autograd's ``x^T g`` for a tall x."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x @ w

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (x,) = ctx.saved_tensors
        return None, (grad.T @ x).T
