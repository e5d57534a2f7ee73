import numpy as np
import torch

from mmknockout.models.losses import bpr_loss, info_nce, info_nce_distinct, l2_sq_loss
from mmknockout.models.mgcn import MGCN

import model_kit


def params(**over) -> dict:
    return model_kit.params("MGCN", **over)


def knn_weighted_sym(x: np.ndarray, k: int) -> np.ndarray:
    """Hand reference: dense cosine top-k (stable ties), similarities kept, D^-1/2 A D^-1/2."""
    norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = (x / norm) @ (x / norm).T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    a = np.zeros_like(sim)
    np.put_along_axis(a, order, np.take_along_axis(sim, order, axis=1), axis=1)
    deg = a.sum(1)
    inv = np.where(deg > 0, np.abs(deg) ** -0.5, 0.0)
    return inv[:, None] * a * inv[None, :]


def sig(x):
    return 1 / (1 + np.exp(-x))


def lin(layer, x):
    out = x @ layer.weight.detach().double().numpy().T
    return out if layer.bias is None else out + layer.bias.detach().double().numpy()


def hand_forward(model: MGCN, data, feats) -> tuple[np.ndarray, np.ndarray]:
    nu = data.n_users
    r = data.train_matrix.toarray().astype(np.float64)
    a = np.block([[np.zeros((nu, nu)), r], [r.T, np.zeros((data.n_items, data.n_items))]])
    d = a.sum(1)
    inv = np.where(d > 0, d**-0.5, 0)
    a = inv[:, None] * a * inv[None, :]
    r_hat = a[:nu, nu:]
    e_u, e_i = model.user_embedding.double().detach().numpy(), model.item_embedding.double().detach().numpy()
    ego = np.vstack([e_u, e_i])
    content = (ego + a @ ego + a @ a @ ego) / 3
    views = []
    for m, gate_key in (("image", model.gate_image), ("text", model.gate_text)):
        x = lin(model.content.projections[m], feats[m].astype(np.float64))
        items = knn_weighted_sym(feats[m].astype(np.float64), 10) @ (e_i * sig(lin(gate_key[0], x)))
        views.append(np.vstack([r_hat @ items, items]))
    q = model.query_common
    score = [lin(q[2], np.tanh(lin(q[0], v))) for v in views]
    att = np.exp(np.hstack(score))
    att = att / att.sum(1, keepdims=True)
    common = att[:, :1] * views[0] + att[:, 1:] * views[1]
    spec_v = sig(lin(model.gate_image_prefer[0], content)) * (views[0] - common)
    spec_t = sig(lin(model.gate_text_prefer[0], content)) * (views[1] - common)
    return (spec_v + spec_t + common) / 3, content


def test_forward_matches_hand_computation():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(MGCN, params(), data, feats)
    side, content = hand_forward(model, data, feats)
    with torch.no_grad():
        s, c = model.propagate()
        u, i = model.representations()
    np.testing.assert_allclose(s.numpy(), side, atol=1e-5)
    np.testing.assert_allclose(c.numpy(), content, atol=1e-5)
    np.testing.assert_allclose(i.numpy(), (side + content)[data.n_users :], atol=1e-5)
    np.testing.assert_allclose(u.numpy(), (side + content)[: data.n_users], atol=1e-5)


def test_loss_is_bpr_plus_l2_plus_infonce():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    p = {**params(), "cl_loss": 0.1}
    model = model_kit.build(MGCN, p, data, feats)
    users, pos, neg = torch.tensor([0, 3, 5, 7]), torch.tensor([1, 2, 9, 4]), torch.tensor([6, 8, 0, 3])
    side, content = hand_forward(model, data, feats)
    final = side + content
    nu = data.n_users
    u, i, j = final[users.numpy()], final[nu + pos.numpy()], final[nu + neg.numpy()]
    bpr = np.mean(np.log1p(np.exp(-((u * i).sum(1) - (u * j).sum(1)))))
    reg = 0.5 * ((u**2).sum() + (i**2).sum() + (j**2).sum()) / 4

    def nce(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        s = np.exp(a @ b.T / 0.2)
        return np.mean(-np.log(np.diag(s) / s.sum(1)))

    cl = nce(side[nu + pos.numpy()], content[nu + pos.numpy()]) + nce(side[users.numpy()], content[users.numpy()])
    expected = bpr + 1e-4 * reg + 0.1 * cl
    assert abs(model.loss(users, pos, neg).item() - expected) < 1e-5


def test_zero_features_give_zero_item_graphs_and_zero_side_embedding():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(MGCN, params(), data, feats)
    assert model.image_adj.to_dense().abs().sum() == 0
    assert model.text_adj.to_dense().abs().sum() == 0
    side, _content = model.propagate()
    assert side.abs().sum() == 0
    assert torch.isfinite(model.loss(torch.arange(8), torch.arange(8), torch.arange(8, 16)))
    assert torch.isfinite(model_kit.full_scores(model, data.n_users)).all()


def full_table_loss(model, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """The straightforward loss: full (side, content) tables, InfoNCE on the n x n batch logits."""
    side, content = model.propagate()
    final = side + content
    nu = model.n_users
    u, i, j = final[users], final[nu + pos], final[nu + neg]
    rec = bpr_loss((u * i).sum(1), (u * j).sum(1)) + model.hp.reg_weight * l2_sq_loss(u, i, j)
    cl = info_nce(side[nu + pos], content[nu + pos], 0.2) + info_nce(side[users], content[users], 0.2)
    return rec + model.hp.cl_loss * cl


def assert_batch_loss_matches_full_tables(model, users, pos, neg, reseed: int | None = None) -> None:
    """``model.loss`` (batch rows only, distinct InfoNCE rows) equals the full-table loss, gradients too."""
    grads = []
    for fn in (model.loss, lambda *b: full_table_loss(model, *b)):
        if reseed is not None:
            torch.manual_seed(reseed)
        model.zero_grad()
        value = fn(users, pos, neg)
        value.backward()
        grads.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_info_nce_distinct_matches_info_nce_on_repeated_rows():
    torch.manual_seed(0)
    a, b = torch.randn(7, 5, requires_grad=True), torch.randn(7, 5, requires_grad=True)
    index = torch.tensor([3, 0, 3, 6, 1, 3, 0, 2])
    got = info_nce_distinct(a, b, index, 0.2)
    want = info_nce(a[index], b[index], 0.2)
    torch.testing.assert_close(got, want)
    ga = torch.autograd.grad(got, (a, b))
    wa = torch.autograd.grad(want, (a, b))
    for g, w in zip(ga, wa, strict=True):
        torch.testing.assert_close(g, w)


def test_batch_loss_matches_full_table_loss_with_repeats():
    data = model_kit.tiny_split()
    model = model_kit.build(MGCN, {**params(), "cl_loss": 0.1}, data)
    users = torch.tensor([0, 3, 5, 3, 7, 0])
    pos, neg = torch.tensor([1, 2, 9, 2, 4, 1]), torch.tensor([6, 8, 0, 3, 6, 2])
    assert_batch_loss_matches_full_tables(model, users, pos, neg)
