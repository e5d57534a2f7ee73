import numpy as np
import torch
import torch.nn.functional as F
import yaml

import model_kit
from mmknockout.models.grcn import GRCN, attention_aggregate, segment_softmax


def params(**overrides) -> dict:
    y = yaml.safe_load(open("config/models/GRCN.yaml"))
    return {**y["fixed"], **{k: v[0] for k, v in y["grid"].items()}, **overrides}


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


def test_segment_softmax_and_attention_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    src, dst = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 1, 1])
    agg, alpha = attention_aggregate(x, src, dst)
    # node 2 receives from 0 (score 1) and 1 (score 2); node 1 from 2 (score 2) and 0 (score 0)
    a2 = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum()
    a1 = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    np.testing.assert_allclose(alpha.numpy(), [a2[0], a2[1], a1[0], a1[1]], rtol=1e-6)
    expected = np.zeros((3, 2))
    expected[2] = a2[0] * x[0].numpy() + a2[1] * x[1].numpy()
    expected[1] = a1[0] * x[2].numpy() + a1[1] * x[0].numpy()
    np.testing.assert_allclose(agg.numpy(), expected, rtol=1e-6)
    big = segment_softmax(torch.tensor([1000.0, 999.0]), torch.tensor([0, 0]), 1)
    assert torch.isfinite(big).all()


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
        torch.testing.assert_close(model.route(pref, content, model.edge_user, model.edge_item), pref)
        torch.testing.assert_close(model.routed_preference(pref, content), pref)
        model.paper_routing = True
        routed = model.routed_preference(pref, content)
    # paper direction: users aggregate attended item content, one step by hand
    a = dense_adjacency(model)[: model.n_users, model.n_users:]
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
        model.reg_weight = 0.0
        bpr = model.loss(users, pos, neg)
    e = model.id_embedding.detach()
    items = torch.cat([pos, neg]) + model.n_users
    emb = (e[torch.cat([users, users])] ** 2 + e[items] ** 2).mean()
    pv, pt = model.preferences["image"].detach(), model.preferences["text"].detach()
    reg = emb + (pv ** 2).mean() + (pv[users] ** 2).mean() + (pt[users] ** 2).mean()
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


def test_loss_decreases_and_knockouts_finite():
    model_kit.assert_loss_decreases(GRCN, params(), epochs=20)
    model_kit.assert_knockouts_finite(GRCN, params(), epochs=2)


def test_deterministic():
    data = model_kit.tiny_split()
    losses = [model_kit.train_epochs(model_kit.build(GRCN, params(), data, seed=0), data, 2) for _ in range(2)]
    assert losses[0] == losses[1]
