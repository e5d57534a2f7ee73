import numpy as np
import torch
from test_model_mgcn import assert_batch_loss_matches_full_tables

from mmknockout.models.smore import SMORE, max_fusion

import model_kit


def params(**over) -> dict:
    return model_kit.params("SMORE", **over)


def knn_weighted_sym(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand reference: (normalised weighted kNN graph, edge mask); stable ties, D^-1/2 A D^-1/2."""
    norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = (x / norm) @ (x / norm).T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    a, mask = np.zeros_like(sim), np.zeros(sim.shape, dtype=bool)
    np.put_along_axis(a, order, np.take_along_axis(sim, order, axis=1), axis=1)
    np.put_along_axis(mask, order, True, axis=1)
    deg = a.sum(1)
    inv = np.where(deg > 0, np.abs(deg) ** -0.5, 0.0)
    return inv[:, None] * a * inv[None, :], mask


def sig(x):
    return 1 / (1 + np.exp(-x))


def lin(layer, x):
    out = x @ layer.weight.detach().double().numpy().T
    return out if layer.bias is None else out + layer.bias.detach().double().numpy()


def softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_spectral_filters_match_numpy_fft():
    data = model_kit.tiny_split()
    model = model_kit.build(SMORE, params(), data)
    rng = np.random.default_rng(0)
    x_v, x_t = rng.normal(size=(5, 64)), rng.normal(size=(5, 64))
    c = {n: getattr(model, f"{n}_filter").detach().double().numpy()[0] for n in ("image", "text", "fusion")}
    c = {n: w[:, 0] + 1j * w[:, 1] for n, w in c.items()}
    fv, ft = np.fft.rfft(x_v, axis=1, norm="ortho"), np.fft.rfft(x_t, axis=1, norm="ortho")
    expected = [
        np.fft.irfft(fv * c["image"], n=64, axis=1, norm="ortho"),
        np.fft.irfft(ft * c["text"], n=64, axis=1, norm="ortho"),
        np.fft.irfft(fv * ft * c["fusion"], n=64, axis=1, norm="ortho"),
    ]
    with torch.no_grad():
        got = model.spectrum_convolution(torch.tensor(x_v, dtype=torch.float32), torch.tensor(x_t, dtype=torch.float32))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), e, atol=1e-4)


def test_fusion_graph_is_max_over_union_of_edges():
    a = torch.sparse_coo_tensor(
        torch.tensor([[0, 0, 1], [0, 1, 1]]), torch.tensor([0.5, -0.2, 0.3]), (2, 2), check_invariants=False
    ).coalesce()
    b = torch.sparse_coo_tensor(
        torch.tensor([[0, 1, 1], [1, 0, 1]]), torch.tensor([-0.4, 0.7, 0.1]), (2, 2), check_invariants=False
    ).coalesce()
    # (0,1): both present -> max(-0.2, -0.4); (1,0) only in b -> 0.7 (absent is not 0)
    torch.testing.assert_close(max_fusion(a, b).to_dense(), torch.tensor([[0.5, -0.2], [0.7, 0.3]]))


def test_forward_matches_hand_computation():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    p = {**params(), "image_knn_k": 15, "text_knn_k": 10, "dropout_rate": 0.1}
    model = model_kit.build(SMORE, p, data, feats)
    model.eval()
    nu = data.n_users
    r = data.train_matrix.toarray().astype(np.float64)
    a = np.block([[np.zeros((nu, nu)), r], [r.T, np.zeros((data.n_items, data.n_items))]])
    d = a.sum(1)
    inv = np.where(d > 0, d**-0.5, 0)
    a = inv[:, None] * a * inv[None, :]
    e_u, e_i = model.user_embedding.double().detach().numpy(), model.item_embedding.double().detach().numpy()
    ego = np.vstack([e_u, e_i])
    content = (ego + a @ ego + a @ a @ ego + a @ a @ a @ ego) / 4  # n_ui_layers = 3
    s_v, m_v = knn_weighted_sym(feats["image"].astype(np.float64), 15)
    s_t, m_t = knn_weighted_sym(feats["text"].astype(np.float64), 10)
    s_f = np.where(m_v & m_t, np.maximum(s_v, s_t), np.where(m_v, s_v, s_t))
    np.testing.assert_allclose(model.fusion_adj.to_dense().numpy(), s_f, atol=1e-6)
    with torch.no_grad():
        convs = [c.double().numpy() for c in model.spectrum_convolution(model.content("image"), model.content("text"))]
    views = []
    for conv, g, s in zip(convs, (model.gate_image, model.gate_text, model.gate_fusion), (s_v, s_t, s_f), strict=True):
        items = s @ (e_i * sig(lin(g[0], conv)))
        views.append(np.vstack([a[:nu, nu:] @ items, items]))
    v, t, f = views

    def q(m, x):
        return lin(m[2], np.tanh(lin(m[0], x)))

    agg_v = softmax(q(model.query_image, f)) * v
    agg_t = softmax(q(model.query_text, f)) * t
    side = (
        sig(lin(model.gate_image_prefer[0], content)) * agg_v
        + sig(lin(model.gate_text_prefer[0], content)) * agg_t
        + sig(lin(model.gate_fusion_prefer[0], content)) * f
    ) / 3
    with torch.no_grad():
        u, i = model.representations()
    np.testing.assert_allclose(u.numpy(), (content + side)[:nu], atol=1e-5)
    np.testing.assert_allclose(i.numpy(), (content + side)[nu:], atol=1e-5)


def test_zero_features_give_zero_graphs_and_lightgcn_representations():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(SMORE, params(), data, feats)
    for g in (model.image_adj, model.text_adj, model.fusion_adj):
        assert g.to_dense().abs().sum() == 0
    side, _content = model.propagate()
    assert side.abs().sum() == 0
    assert torch.isfinite(model.loss(torch.arange(8), torch.arange(8), torch.arange(8, 16)))
    assert torch.isfinite(model_kit.full_scores(model, data.n_users)).all()


def test_deterministic_with_gate_dropout():
    data = model_kit.tiny_split()
    p = {**params(), "dropout_rate": 0.1}
    losses = [model_kit.train_epochs(model_kit.build(SMORE, p, data, seed=0), data, 2) for _ in range(2)]
    assert losses[0] == losses[1]


def test_dropout_rows_draws_the_full_table_mask():
    data = model_kit.tiny_split()
    model = model_kit.build(SMORE, {**params(), "dropout_rate": 0.3}, data)
    model.train()
    x = torch.rand(data.n_users + data.n_items, 64)
    rows = torch.tensor([2, 5, 11, data.n_users + 3])
    torch.manual_seed(7)
    want = model.dropout(x)[rows]
    torch.manual_seed(7)
    torch.testing.assert_close(model.dropout_rows(x[rows], rows), want, rtol=0, atol=0)


def test_batch_loss_matches_full_table_loss_with_dropout_and_repeats():
    data = model_kit.tiny_split()
    model = model_kit.build(SMORE, {**params(), "dropout_rate": 0.1}, data)
    model.train()
    users = torch.tensor([0, 3, 5, 3, 7, 0])
    pos, neg = torch.tensor([1, 2, 9, 2, 4, 1]), torch.tensor([6, 8, 0, 3, 6, 2])
    assert_batch_loss_matches_full_tables(model, users, pos, neg, reseed=3)
