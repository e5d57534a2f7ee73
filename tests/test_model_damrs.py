import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.models import damrs
from mmknockout.models.damrs import (
    DAMRS,
    denoised_knn_indices,
    row_topk_indices,
    symmetric_binary_kl,
)

import model_kit


def params(**over) -> dict:
    return model_kit.params("DAMRS", **over)


def numpy_denoised_graphs(text: np.ndarray, image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense reference: mask below either mean in both, top-c per row, unit weights, D^-1/2 A D^-1/2."""

    def cos(x):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x @ x.T

    st, sv = cos(text.astype(np.float64)), cos(image.astype(np.float64))
    below = (st < st.mean()) | (sv < sv.mean())
    st[below], sv[below] = 0, 0
    graphs = []
    for s in (st, sv):
        a = np.zeros_like(s)
        for i in range(len(s)):
            c = min(k, int((st[i] != 0).sum()))
            order = np.argsort(-s[i], kind="stable")[:c]
            a[i, order] = 1
        deg = a.sum(1)
        inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-30)), 0)
        graphs.append(inv[:, None] * a * inv[None, :])
    return graphs[0], graphs[1]


def test_denoised_graphs_match_dense_reference_and_chunking():
    rng = np.random.default_rng(0)
    text, image = rng.normal(size=(30, 6)).astype(np.float32), rng.normal(size=(30, 9)).astype(np.float32)
    text[3] = 0  # a zero text row: no neighbours in either modality
    data = model_kit.tiny_split(n_items=30)
    model = model_kit.build(DAMRS, params(), data, {"text": text, "image": image})
    ref_t, ref_v = numpy_denoised_graphs(text, image, 10)
    np.testing.assert_allclose(model.text_adj.to_dense().numpy(), ref_t, atol=1e-6)
    np.testing.assert_allclose(model.image_adj.to_dense().numpy(), ref_v, atol=1e-6)
    assert model.text_adj.to_dense()[3].abs().sum() == 0 and model.image_adj.to_dense()[3].abs().sum() == 0
    whole = denoised_knn_indices(torch.tensor(text), torch.tensor(image), 10, chunk_size=1024)
    chunked = denoised_knn_indices(torch.tensor(text), torch.tensor(image), 10, chunk_size=7)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a, b)


def test_session_graph_is_item_graph_plus_self_loops():
    data = model_kit.tiny_split()
    model = model_kit.build(DAMRS, params(), data)
    a = np.eye(data.n_items)
    for i, row in enumerate(data.item_graph.ids):
        a[i, row[row >= 0]] = 1
    inv = 1 / np.sqrt(a.sum(1))
    np.testing.assert_allclose(model.session_adj.to_dense().numpy(), inv[:, None] * a * inv[None, :], atol=1e-6)


def test_representation_averages_the_three_item_views():
    data = model_kit.tiny_split()
    model = model_kit.build(DAMRS, params(), data)
    u, i = model.representations()
    e = model.item_embedding
    ego = torch.cat([model.user_embedding, e])
    a = model.adj.to_dense()
    lg = (ego + a @ ego + a @ a @ ego) / 3
    views = sum(g.to_dense() @ e for g in (model.text_adj, model.image_adj, model.session_adj)) / 3
    torch.testing.assert_close(u, lg[: data.n_users])
    torch.testing.assert_close(i, lg[data.n_users :] + views)


def test_loss_terms_match_hand_computation():
    # symmetric KL of Bernoullis, both directions written out as in DA-MRS
    lp, lq = torch.tensor([0.3, -2.0, 4.0]), torch.tensor([1.0, 0.5, -3.0])
    p, q = torch.sigmoid(lp), torch.sigmoid(lq)

    def kl(a, b):
        return a * torch.log(a / b) + (1 - a) * torch.log((1 - a) / (1 - b))

    torch.testing.assert_close(symmetric_binary_kl(lp, lq), kl(p, q) + kl(q, p))
    # pseudo labels and neighbour discrimination on 2 batch items x 25 items
    g = torch.Generator().manual_seed(0)
    probs = [torch.rand(2, 25, generator=g) for _ in range(3)]
    own = probs[2].clone()
    mm, single = DAMRS.pseudo_labels(*probs)
    assert torch.equal(probs[2], own)  # restored after the in-place masking
    fused = (probs[0] + probs[1] + 2 * probs[2]).numpy()
    assert set(mm[0].tolist()) == set(np.argsort(-fused[0])[:10].tolist())
    rest = probs[2][0].numpy().copy()
    rest[mm[0].numpy()] = 0
    assert set(single[0].tolist()) == set(np.argsort(-rest)[:10].tolist())
    emb, all_emb = torch.randn(2, 4, generator=g), torch.randn(25, 4, generator=g)
    z, za = F.normalize(emb, dim=1).numpy(), F.normalize(all_emb, dim=1).numpy()
    e = np.exp(z @ za.T / 0.2)
    s_mm = np.take_along_axis(e, mm.numpy(), 1).sum(1)
    s_single = np.take_along_axis(e, single.numpy(), 1).sum(1)
    expected = np.mean(-np.log(s_mm / e.sum(1) + 1e-9) - np.log(s_single / (e.sum(1) - s_mm) + 1e-9))
    blocks = [torch.tensor(e[:1], dtype=torch.float32), torch.tensor(e[1:], dtype=torch.float32)]
    got = DAMRS.neighbour_discrimination(
        mm, single, F.normalize(emb, dim=1), F.normalize(all_emb, dim=1), blocks
    ).item()
    assert abs(got - expected) < 1e-4 * abs(expected)
    # confidence weights of the BPR terms
    u = torch.randn(3, 4, generator=g)
    views = tuple(torch.randn(6, 4, generator=g) for _ in range(3))
    pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    w_pos, w_neg = DAMRS.sample_weights(u, views, pos, neg)
    pm = torch.sigmoid(torch.stack([(u * F.normalize(h[pos], dim=1)).sum(1) for h in views]))
    nm = torch.sigmoid(torch.stack([(u * F.normalize(h[neg], dim=1)).sum(1) for h in views])).mean()
    torch.testing.assert_close(w_pos, (pm.mean(0) * torch.exp(-2 * pm.var(0))).clamp(0, 1))
    torch.testing.assert_close(w_neg, torch.where(pm.mean(0) < nm, (pm.max(0).values - nm).clamp(0, 1), torch.zeros(3)))


def test_degenerate_features_define_the_graphs():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    zeros = {k: np.zeros_like(v) for k, v in feats.items()}
    ones = {k: np.ones_like(v) for k, v in feats.items()}
    m0 = model_kit.build(DAMRS, params(), data, zeros)
    assert m0.text_adj.nnz == 0 and m0.image_adj.nnz == 0  # no non-zero text similarity: no neighbours
    _u, i = m0.representations()
    assert torch.isfinite(i).all()
    m1 = model_kit.build(DAMRS, params(), data, ones)  # all ties, nothing masked: hub graph 0..9
    for adj in (m1.text_adj, m1.image_adj):
        assert adj.indices()[1].unique().tolist() == list(range(10))
        assert adj.indices().shape[1] == 10 * data.n_items
    # zero image only: the image graph is the hub, the text graph is unchanged
    mi = model_kit.build(DAMRS, params(), data, {"text": feats["text"], "image": zeros["image"]})
    real = model_kit.build(DAMRS, params(), data, feats)
    assert mi.image_adj.indices()[1].unique().tolist() == list(range(10))
    rows = mi.text_adj.indices()[0]
    assert torch.equal(
        torch.bincount(rows, minlength=data.n_items), torch.bincount(mi.image_adj.indices()[0], minlength=data.n_items)
    )
    assert real.text_adj.nnz > 0


def test_row_topk_prefilter_selects_the_top_values():
    g = torch.Generator().manual_seed(1)
    for n in (25, 103, 7050):
        x = torch.rand(40, n, generator=g)
        x[:5] = torch.round(x[:5] * 4) / 4  # many ties
        x[5] = 1.0
        got = row_topk_indices(x, 10)
        assert all(len(set(r.tolist())) == 10 for r in got)  # distinct columns
        distinct = torch.stack([torch.randperm(n, generator=g) for _ in range(8)]).float()  # no ties: same indices
        assert torch.equal(
            row_topk_indices(distinct, 10).sort(1).values, torch.topk(distinct, 10, dim=1).indices.sort(1).values
        )
        torch.testing.assert_close(
            x.gather(1, got).sort(1).values, torch.topk(x, 10, dim=1).values.sort(1).values, rtol=0, atol=0
        )


def reference_neighbour_loss(items: torch.Tensor, views: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """DA-MRS's neighbour discrimination written plainly: full softmax matrices, scatter, autograd."""
    with torch.no_grad():
        probs = [torch.softmax(F.normalize(h[items], dim=1) @ F.normalize(h, dim=1).T, dim=1) for h in views]
    total = 0.0
    for own in range(3):
        a, b = (m for m in range(3) if m != own)
        mm_pos = torch.topk(probs[a] + probs[b] + 2 * probs[own], 10, dim=1).indices
        single_pos = torch.topk(probs[own].scatter(1, mm_pos, 0.0), 10, dim=1).indices
        z, z_all = F.normalize(views[own][items], dim=1), F.normalize(views[own], dim=1)
        e = torch.exp(z @ z_all.T / 0.2)
        mm, single, all_ = e.gather(1, mm_pos).sum(1), e.gather(1, single_pos).sum(1), e.sum(1)
        total = total + (-torch.log(mm / all_ + 1e-9) - torch.log(single / (all_ - mm) + 1e-9)).mean()
    return total / 3


def test_blocked_neighbour_loss_matches_plain_reference(monkeypatch):
    monkeypatch.setattr(damrs, "ROW_BLOCK", 4)  # several blocks and a ragged last one
    data = model_kit.tiny_split(n_items=150)
    model = model_kit.build(DAMRS, params(), data)
    g = torch.Generator().manual_seed(2)
    items = torch.randperm(150, generator=g)[:11].sort().values
    grads = []
    for fn in (model.neighbour_loss, reference_neighbour_loss):
        views = tuple(
            torch.randn(150, 8, generator=torch.Generator().manual_seed(m), requires_grad=True) for m in range(3)
        )
        loss = fn(items, views)
        loss.backward()
        grads.append((loss.detach(), [v.grad for v in views]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b)
