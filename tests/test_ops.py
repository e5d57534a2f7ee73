"""Gradient checks of the custom autograd kernels (float64, tiny inputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mmknockout.models import ops
from mmknockout.models.graph import BipartiteEdges, GraphOperator, sparse_from_edges


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


def csr_triple(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    csr = matrix.to_sparse_csr()
    return csr.col_indices(), csr.crow_indices()[:-1].contiguous(), csr.values()


def tiny_edges() -> BipartiteEdges:
    users, items = torch.tensor([0, 0, 1, 2, 2, 3]), torch.tensor([0, 2, 1, 0, 1, 2])
    return BipartiteEdges(users, items, 4, 3)


def test_bag_product():
    rows, cols = torch.tensor([0, 0, 1, 2, 3]), torch.tensor([1, 3, 0, 2, 2])
    a = sparse_from_edges(rows, cols, torch.rand(5, dtype=torch.float64), (4, 4))
    x = rand(4, 3)
    assert gradcheck(lambda x: ops.BagProduct.apply(x, *csr_triple(a), *csr_triple(a.t().coalesce())), (x,))
    torch.testing.assert_close(ops.bag_product(x.detach(), *csr_triple(a)), a.to_dense() @ x.detach())


def test_graph_operator_matches_dense_product():
    a = sparse_from_edges(torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), torch.tensor([0.5, 2.0, 1.0]), (3, 3))
    x = torch.randn(3, 2, requires_grad=True)
    GraphOperator(a)(x).sum().backward()
    torch.testing.assert_close(x.grad, a.to_dense().T @ torch.ones(3, 2))


def test_row_normalize():
    x = rand(5, 4)
    assert gradcheck(ops.RowNormalize.apply, (x,))
    torch.testing.assert_close(ops.RowNormalize.apply(x), F.normalize(x, dim=1))


def test_mean_square():
    assert gradcheck(ops.MeanSquare.apply, (rand(4, 3),))


def test_gather_rows():
    scratch = ops.Scratch()
    rows = torch.tensor([3, 0, 2])
    assert gradcheck(lambda t: ops.GatherRows.apply(t, rows, scratch).clone(), (rand(5, 3),))


def test_segment_softmax():
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    scores = rand(6)
    assert gradcheck(lambda s: ops.SegmentSoftmax.apply(s, groups, 3), (scores,))
    out = ops.segment_softmax(scores.detach(), groups, 3)
    torch.testing.assert_close(out[3:], torch.softmax(scores.detach()[3:], 0))


def test_edge_dots_and_products():
    edges = tiny_edges()
    a, b = rand(4, 2, seed=1), rand(3, 2, seed=2)
    assert gradcheck(lambda a, b: ops.EdgeDots.apply(a, b, edges), (a, b))
    values, base_u, base_i = rand(6, seed=3), rand(4, 2, seed=4), rand(3, 2, seed=5)
    assert gradcheck(lambda v, x, base: ops.EdgeProduct.apply(v, x, base, edges, True), (values, b, base_u))
    assert gradcheck(lambda v, x, base: ops.EdgeProduct.apply(v, x, base, edges, False), (values, a, base_i))


def test_row_exp_sum():
    z, y = (0.2 * rand(5, 3, seed=1)).detach().requires_grad_(), (0.2 * rand(7, 3, seed=2)).detach().requires_grad_()

    def f(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = torch.exp(z @ y.T / 0.2).detach()
        return ops.RowExpSum.apply(z, y, [e[:2], e[2:]], 0.2)

    assert gradcheck(f, (z, y))


def test_bounded_log_sum_exp():
    a, b = rand(6, 3, seed=1) * 0.5, rand(4, 3, seed=2) * 0.5
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    assert gradcheck(ops.BoundedLogSumExp.apply, (a, b))
    torch.testing.assert_close(ops.BoundedLogSumExp.apply(a, b), torch.logsumexp(a @ b.T, dim=1))


def test_fixed_projection():
    x = rand(5, 4).detach()
    assert gradcheck(lambda w: ops.FixedProjection.apply(x, w), (rand(4, 2, seed=1),))
