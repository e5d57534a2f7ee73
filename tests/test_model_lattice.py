import numpy as np
import torch

from mmknockout.models.lattice import LATTICE

import model_kit


def params(**over) -> dict:
    return model_kit.params("LATTICE", **over)


def knn_weighted(x: np.ndarray, k: int) -> np.ndarray:
    """Hand reference: dense cosine top-k (stable, lower index wins ties), similarities kept."""
    norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = (x / norm) @ (x / norm).T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(sim)
    np.put_along_axis(out, order, np.take_along_axis(sim, order, axis=1), axis=1)
    return out


def sym(a: np.ndarray) -> np.ndarray:
    deg = a.sum(1)
    inv = np.where(deg > 0, np.abs(deg) ** -0.5, 0.0)
    return inv[:, None] * a * inv[None, :]


def dense_learned(model: LATTICE) -> np.ndarray:
    idx, val = model.learned_graph()
    out = torch.zeros(model.n_items, model.n_items).index_put_(
        (torch.arange(model.n_items).unsqueeze(1).expand_as(idx), idx), val.detach(), accumulate=True
    )
    return out.numpy()


def test_original_graphs_are_weighted_sym_normalised_knn():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(LATTICE, params(), data, feats)
    np.testing.assert_allclose(
        model.original_adj["image"].to_dense().numpy(),
        sym(knn_weighted(feats["image"].astype(np.float64), 10)),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        model.original_adj["text"].to_dense().numpy(),
        sym(knn_weighted(feats["text"].astype(np.float64), 10)),
        atol=1e-6,
    )


def test_learned_graph_and_item_representation_match_hand_computation():
    data = model_kit.tiny_split()
    model = model_kit.build(LATTICE, params(), data)
    with torch.no_grad():
        model.modal_weight.copy_(torch.tensor([0.2, 0.7]))
        w = torch.softmax(model.modal_weight, 0).numpy().astype(np.float64)
        zi = model.content("image").double().numpy()
        zt = model.content("text").double().numpy()
        learned = sym(w[0] * knn_weighted(zi, 10) + w[1] * knn_weighted(zt, 10))
        np.testing.assert_allclose(dense_learned(model), learned, atol=1e-5)

        original = (
            w[0] * model.original_adj["image"].to_dense().numpy() + w[1] * model.original_adj["text"].to_dense().numpy()
        )
        s = 0.1 * learned + 0.9 * original
        h = s @ model.item_embedding.double().numpy()
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        # UI graph: D^-1 (A + I), layer mean over 2 layers
        r = data.train_matrix.toarray()
        a = np.block(
            [[np.zeros((data.n_users, data.n_users)), r], [r.T, np.zeros((data.n_items, data.n_items))]]
        ) + np.eye(data.n_users + data.n_items)
        a = a / a.sum(1, keepdims=True)
        ego = torch.cat([model.user_embedding, model.item_embedding]).double().numpy()
        lg = (ego + a @ ego + a @ a @ ego) / 3
        u, i = model.representations()
    np.testing.assert_allclose(u.numpy(), lg[: data.n_users], atol=1e-5)
    np.testing.assert_allclose(i.numpy(), lg[data.n_users :] + h, atol=1e-5)


def test_learned_graph_gets_gradient_only_at_first_batch_of_epoch():
    data = model_kit.tiny_split()
    model = model_kit.build(LATTICE, params(), data)
    batch = (torch.arange(8), torch.arange(8), torch.arange(8, 16))
    model.on_epoch_start(0)
    model.loss(*batch).backward()
    assert model.content.projections["image"].weight.grad.abs().sum() > 0
    first_graph = model._learned[1].clone()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.content.projections["image"].weight.add_(1.0)  # a stale (detached) graph must ignore the change
    model.loss(*batch).backward()
    assert model.content.projections["image"].weight.grad is None
    assert torch.equal(model._learned[1], first_graph)
    model.on_epoch_start(1)
    model.loss(*batch).backward()
    assert model.content.projections["image"].weight.grad is not None


def test_zero_features_give_zero_original_graph_and_finite_loss():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(LATTICE, params(), data, feats)
    assert model.original_adj["image"].to_dense().abs().sum() == 0
    assert model.original_adj["text"].to_dense().abs().sum() == 0
    loss = model.loss(torch.arange(8), torch.arange(8), torch.arange(8, 16))
    assert torch.isfinite(loss)
    # projected zero features are the bias: constant rows, ties -> every item links to 0..k-1
    idx, _ = model.learned_graph()
    assert set(idx.unique().tolist()) == set(range(10))
    assert torch.isfinite(model_kit.full_scores(model, data.n_users)).all()
