import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.models import graph, ops


def dense(t: torch.Tensor) -> np.ndarray:
    return t.to_dense().numpy()


def test_normalized_adjacency_matches_formula():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])
    adj = dense(graph.normalized_adjacency(users, items, 2, 2))
    a = np.zeros((4, 4))
    for u, i in zip(users, items, strict=True):
        a[u, 2 + i] = a[2 + i, u] = 1
    d = a.sum(1)
    np.testing.assert_allclose(adj, a / np.sqrt(np.outer(d, d)), rtol=1e-6)


def test_lightgcn_propagate_is_layer_mean():
    adj = graph.normalized_adjacency(np.array([0, 1]), np.array([1, 0]), 2, 2)
    ego = torch.randn(4, 3)
    a = adj.to_dense()
    expected = (ego + a @ ego + a @ a @ ego) / 3
    torch.testing.assert_close(graph.lightgcn_propagate(graph.GraphOperator(adj), ego, 2), expected)


def test_graph_operator_product_and_gradient_match_dense():
    """A non-symmetric matrix: the backward pass must use the stored transpose."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(5, 4, generator=gen) * (torch.rand(5, 4, generator=gen) > 0.5)
    op = graph.GraphOperator(a.to_sparse())
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    w = torch.randn(5, 3, generator=gen)
    (op(x) * w).sum().backward()
    torch.testing.assert_close(op(x.detach()), a @ x.detach())
    torch.testing.assert_close(x.grad, a.T @ w)
    assert op.nnz == int((a != 0).sum())
    torch.testing.assert_close(op.to_dense(), a)
    rows, cols = op.indices()
    torch.testing.assert_close(a[rows, cols], op.values)


def test_knn_graph_weighted_and_unweighted():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    idx, sim = graph.knn_indices(x, 2)
    assert idx.tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]]
    w = dense(graph.knn_graph(x, 2, weighted=True))
    raw = np.zeros((4, 4))
    xn = (x / x.norm(dim=1, keepdim=True)).numpy()
    for r in range(4):
        for c in idx[r].tolist():
            raw[r, c] = xn[r] @ xn[c]
    d = raw.sum(1)
    np.testing.assert_allclose(w, raw / np.sqrt(np.outer(d, d)), rtol=1e-5)
    u = dense(graph.knn_graph(x, 2, weighted=False))
    np.testing.assert_allclose(u[u > 0], 0.5)


def test_zero_features_give_zero_weighted_graph_and_hub_indices():
    x = torch.zeros(5, 3)
    idx, sim = graph.knn_indices(x, 2)
    assert idx.tolist() == [[0, 1]] * 5
    assert torch.all(sim == 0)
    w = graph.knn_graph(x, 2, weighted=True)
    assert torch.isfinite(w.values()).all() and torch.all(w.values() == 0)


def test_constant_features_tie_break_to_lowest_index():
    idx, _ = graph.knn_indices(torch.ones(6, 4), 3)
    assert idx.tolist() == [[0, 1, 2]] * 6


def test_knn_chunking_is_invisible():
    x = torch.randn(50, 8)
    a = graph.knn_indices(x, 5, chunk_size=7)[0]
    b = graph.knn_indices(x, 5, chunk_size=1000)[0]
    assert torch.equal(a, b)


def test_row_normalize_matches_f_normalize_with_gradient():
    x = torch.randn(5, 3, dtype=torch.float64)
    x[2] = 0.0  # clamped row: gradient g / eps, like F.normalize
    x.requires_grad_(True)
    g = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(ops.row_normalize(x), F.normalize(x), rtol=0, atol=0)
    (fast,) = torch.autograd.grad(ops.row_normalize(x), x, g)
    (ref,) = torch.autograd.grad(F.normalize(x), x, g)
    torch.testing.assert_close(fast, ref)
    torch.autograd.gradcheck(ops.row_normalize, (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),))


def test_stable_topk_equals_the_head_of_a_stable_sort():
    gen = torch.Generator().manual_seed(0)
    distinct = torch.randn(6, 50, generator=gen)
    ties = torch.randint(0, 3, (6, 50), generator=gen).float()  # many ties, also at the k-th value
    ties[0] = 0.0  # a constant row
    for scores in (distinct, ties):
        values, order = torch.sort(scores, dim=1, descending=True, stable=True)
        idx, top = graph.stable_topk(scores, 7)
        assert torch.equal(idx, order[:, :7]) and torch.equal(top, values[:, :7])
