import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.models.graph import BipartiteEdges
from mmknockout.models.grcn import GRCN, MODALITIES
from mmknockout.models.ops import segment_softmax

import model_kit


def params(**over) -> dict:
    return model_kit.params("GRCN", **over)


def dense_adjacency(model: GRCN) -> np.ndarray:
    n = model.n_users + model.n_items
    a = np.zeros((n, n))
    u, i = model.edge_user.numpy(), model.edge_item.numpy()
    a[u, i] = a[i, u] = 1
    return a


def dense_attention(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """alpha[v, s] = softmax over neighbours s of v of <x_v, x_s>; zero off the graph."""
    s = np.where(a > 0, x @ x.T, -np.inf)
    s = s - np.where(np.isfinite(s).any(1, keepdims=True), s.max(1, keepdims=True), 0)
    e = np.where(a > 0, np.exp(s), 0)
    return e / np.maximum(e.sum(1, keepdims=True), 1e-300)


# ---------------------------------------------------------------- straightforward references
def reference_softmax(scores: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Plain-autograd segment softmax (the former implementation)."""
    top = torch.full((n_groups,), float("-inf"), dtype=scores.dtype)
    top = top.scatter_reduce(0, groups, scores.detach(), reduce="amax", include_self=True)
    ex = (scores - top[groups]).exp()
    total = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, groups, ex)
    return ex / (total[groups] + 1e-16)


def reference_aggregate(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """out[v] = sum over edges (s -> v) of weight_e * x[s], by gathering and index_add."""
    return torch.zeros_like(x).index_add_(0, dst, weight.unsqueeze(1) * x[src])


def reference_attention(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dot-product attention: alpha_e = softmax over the edges into dst_e of <x_dst, x_src>."""
    alpha = reference_softmax((x[dst] * x[src]).sum(dim=1), dst, x.shape[0])
    return reference_aggregate(x, src, dst, alpha), alpha


def reference_propagate(model: GRCN) -> torch.Tensor:
    """GRCN's propagation over explicit 2E edge lists with gathers and index_add (no CSR)."""
    users, items = model.edge_user, model.edge_item
    src, dst = torch.cat([users, items]), torch.cat([items, users])
    reps, alphas = [], []
    for m in MODALITIES:
        content = F.normalize(F.leaky_relu(model.projections[m](getattr(model, f"{m}_features"))))
        pref = F.normalize(model.preferences[m])
        if model.hp.paper_routing:
            for _ in range(model.hp.n_layers):
                update, _ = reference_attention(torch.cat([pref, content]), items, users)
                pref = F.normalize(pref + update[: model.n_users])
        x = torch.cat([pref, content])
        update, alpha = reference_attention(x, src, dst)
        reps.append(x + update)
        alphas.append(alpha)
    w = torch.relu((torch.stack(alphas, dim=1) * model.node_confidence[src]).max(dim=1).values)
    x0 = F.normalize(model.id_embedding)
    x1 = reference_aggregate(x0, src, dst, w)
    x2 = reference_aggregate(x1, src, dst, w)
    return torch.cat([x0 + x1 + x2, *reps], dim=1)


def tiny_bipartite() -> tuple[BipartiteEdges, torch.Tensor, torch.Tensor]:
    """5 users, 4 items, 6 pairs in user-major order (the order GRCN stores); user 3 and item 3
    have no edge, so their output rows must be exactly zero (products skip the zero fill)."""
    users, items = torch.tensor([0, 0, 1, 2, 2, 4]), torch.tensor([1, 2, 0, 0, 2, 1])
    return BipartiteEdges(users, items, 5, 4), users, items


# ------------------------------------------------------------------------------------- tests
def test_segment_softmax_by_hand_and_its_gradient():
    scores = torch.tensor([1.0, 2.0, 2.0, 0.0])
    alpha = segment_softmax(scores, torch.tensor([1, 1, 0, 0]), 2)
    a1, a0 = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum(), np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    np.testing.assert_allclose(alpha.numpy(), [a1[0], a1[1], a0[0], a0[1]], rtol=1e-6)
    big = segment_softmax(torch.tensor([1000.0, 999.0]), torch.tensor([0, 0]), 1)
    assert torch.isfinite(big).all()
    groups = torch.tensor([2, 0, 2, 1, 0, 2, 1])
    s = torch.randn(7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: segment_softmax(t, groups, 4), (s,))
    g = torch.randn(7, dtype=torch.float64)
    (fast,) = torch.autograd.grad(segment_softmax(s, groups, 4), s, g)
    (ref,) = torch.autograd.grad(reference_softmax(s, groups, 4), s, g)
    torch.testing.assert_close(fast, ref)


def test_bipartite_products_match_gathers_and_gradcheck():
    edges, users, items = tiny_bipartite()
    a = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    v = torch.rand(6, dtype=torch.float64, requires_grad=True)
    to_users = torch.zeros(5, 6, dtype=torch.float64).index_add_(0, users, v[:, None] * b[items])
    to_items = torch.zeros(4, 6, dtype=torch.float64).index_add_(0, items, v[:, None] * a[users])
    torch.testing.assert_close(edges.scores(a, b), (a[users] * b[items]).sum(1))
    for _ in range(3):  # fresh, uninitialised outputs each time: isolated rows stay exactly zero
        torch.testing.assert_close(edges.to_users(v, b), to_users, rtol=1e-12, atol=0)
        torch.testing.assert_close(edges.to_items(v, a), to_items, rtol=1e-12, atol=0)
    torch.testing.assert_close(edges.to_users(v, b, base=a), a + to_users)
    torch.testing.assert_close(edges.to_items(v, a, base=b), b + to_items)
    torch.autograd.gradcheck(edges.scores, (a, b))
    torch.autograd.gradcheck(edges.to_users, (v, b))
    torch.autograd.gradcheck(edges.to_items, (v, a))
    torch.autograd.gradcheck(lambda v, b, a: edges.to_users(v, b, base=a), (v, b, a))
    torch.autograd.gradcheck(lambda v, a, b: edges.to_items(v, a, base=b), (v, a, b))
    torch.testing.assert_close(edges.softmax_per_user(v), reference_softmax(v, users, 5))
    torch.testing.assert_close(edges.softmax_per_item(v), reference_softmax(v, items, 4))


def test_fast_propagation_matches_gather_reference_with_gradients():
    data = model_kit.tiny_split()
    for paper_routing in (False, True):
        model = model_kit.build(GRCN, params(paper_routing=paper_routing), data)
        g = torch.randn(model.n_users + model.n_items, 3 * 64)
        fast_out = model.propagate()
        fast = torch.autograd.grad((fast_out * g).sum(), list(model.parameters()))
        ref_out = reference_propagate(model)
        ref = torch.autograd.grad((ref_out * g).sum(), list(model.parameters()))
        torch.testing.assert_close(fast_out, ref_out, rtol=1e-5, atol=1e-6)
        for (name, _), f, r in zip(model.named_parameters(), fast, ref, strict=True):
            torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5, msg=name)


def test_full_propagation_matches_dense_computation():
    data = model_kit.tiny_split()
    model = model_kit.build(GRCN, params(paper_routing=False), data)
    a = dense_adjacency(model)
    n_users = model.n_users
    reps, alphas = [], []
    with torch.no_grad():
        for m in ("image", "text"):
            content = F.normalize(F.leaky_relu(model.projections[m](getattr(model, f"{m}_features")))).numpy()
            pref = F.normalize(model.preferences[m]).numpy()  # toolbox routing leaves it unchanged
            x = np.concatenate([pref, content])
            alpha = dense_attention(x, a)
            reps.append(x + alpha @ x)
            alphas.append(alpha)
        conf = model.node_confidence.numpy()
        # weight of edge s -> v: relu(max_m alpha_m[v, s] * conf[s, m])
        w = np.maximum(np.maximum(alphas[0] * conf[None, :, 0], alphas[1] * conf[None, :, 1]), 0) * (a > 0)
        x0 = F.normalize(model.id_embedding).numpy()
        h = x0 + w @ x0 + w @ (w @ x0)
        expected = np.concatenate([h, *reps], axis=1)
        u, i = model.representations()
    np.testing.assert_allclose(u.numpy(), expected[:n_users], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(i.numpy(), expected[n_users:], rtol=1e-4, atol=1e-5)
    assert u.shape[1] == 3 * 64


def test_toolbox_routing_is_identity_and_paper_routing_is_not():
    data = model_kit.tiny_split()
    model = model_kit.build(GRCN, params(paper_routing=False), data)
    with torch.no_grad():
        content = F.normalize(F.leaky_relu(model.projections["text"](model.text_features)))
        pref = F.normalize(model.preferences["text"])
        # toolbox direction u -> i: no message reaches a user, so routing leaves preferences as they are
        update, _ = reference_attention(torch.cat([pref, content]), model.edge_user, model.edge_item)
        assert update[: model.n_users].abs().max() == 0
        torch.testing.assert_close(model.routed_preference(pref, content), pref)
        model.hp = dataclasses.replace(model.hp, paper_routing=True)
        routed = model.routed_preference(pref, content)
    # paper direction: users aggregate attended item content, one step by hand
    a = dense_adjacency(model)[: model.n_users, model.n_users :]
    p, c = pref.numpy(), content.numpy()
    for _ in range(3):
        s = np.where(a > 0, p @ c.T, -np.inf)
        e = np.where(a > 0, np.exp(s - s.max(1, keepdims=True)), 0)
        p = p + (e / e.sum(1, keepdims=True)) @ c
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(routed.numpy(), p, rtol=1e-4, atol=1e-5)


def test_regulariser_terms():
    data = model_kit.tiny_split()
    model = model_kit.build(GRCN, params(reg_weight=0.5), data)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    with torch.no_grad():
        total = model.loss(users, pos, neg)
        model.hp = dataclasses.replace(model.hp, reg_weight=0.0)
        bpr = model.loss(users, pos, neg)
    e = model.id_embedding.detach()
    items = torch.cat([pos, neg]) + model.n_users
    emb = (e[torch.cat([users, users])] ** 2 + e[items] ** 2).mean()
    pv, pt = model.preferences["image"].detach(), model.preferences["text"].detach()
    reg = emb + (pv**2).mean() + (pv[users] ** 2).mean() + (pt[users] ** 2).mean()
    torch.testing.assert_close(total - bpr, 0.5 * reg)


def test_zero_features_give_identical_content_and_finite_scores():
    data = model_kit.tiny_split()
    zeros = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(GRCN, params(), data, zeros)
    scores = model_kit.full_scores(model, data.n_users)
    assert torch.isfinite(scores).all()
    with torch.no_grad():
        c = F.normalize(F.leaky_relu(model.projections["image"](model.image_features)))
    torch.testing.assert_close(c, c[:1].expand_as(c))
