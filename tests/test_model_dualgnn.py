import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.data.dataset import NeighbourGraph
from mmknockout.models.dualgnn import DualGNN, urn_positions
from mmknockout.models.graph import normalized_adjacency

import model_kit


def params(**over) -> dict:
    return model_kit.params("DualGNN", **over)


def sparse_user_graph_data():
    """Tiny data whose user graph has full, short (3 and 1 neighbours) and empty lists."""
    data = copy.copy(model_kit.tiny_split())
    ids, w = data.user_graph.ids.copy(), data.user_graph.weights.copy()
    ids[1, 3:], w[1, 3:] = -1, 0
    ids[2, 1:], w[2, 1:] = -1, 0
    ids[3, :], w[3, :] = -1, 0
    data.user_graph = NeighbourGraph(ids, w)
    return data


def dense_adjacency(data) -> np.ndarray:
    return normalized_adjacency(data.train_users, data.train_items, data.n_users, data.n_items).to_dense().numpy()


def test_propagation_matches_dense_computation():
    data = sparse_user_graph_data()
    model = model_kit.build(DualGNN, params(user_graph_k=6), data)
    n_u = data.n_users
    a = dense_adjacency(data)
    deg = np.zeros(n_u + data.n_items)
    np.add.at(deg, data.train_users, 1)
    np.add.at(deg, data.train_items + n_u, 1)
    assert (
        abs(
            a[data.train_users[0], data.train_items[0] + n_u]
            - 1 / math.sqrt(deg[data.train_users[0]] * deg[data.train_items[0] + n_u])
        )
        < 1e-6
    )
    with torch.no_grad():
        reps = {}
        for m in ("image", "text"):
            f = getattr(model, f"{m}_features")
            content = model.mlp_out[m](F.leaky_relu(model.mlp_in[m](f)))
            x = F.normalize(torch.cat([model.preferences[m], content])).numpy()
            reps[m] = x + a @ x + a @ (a @ x)
        w = model.user_weight.numpy()[:, :, 0]
        users = w[:, :1] * reps["image"][:n_u] + w[:, 1:] * reps["text"][:n_u]
        s = model.user_graph_dense().numpy()
        expected_users = users + s @ users
        u, i = model.representations()
    np.testing.assert_allclose(i.numpy(), (reps["image"] + reps["text"])[n_u:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(u.numpy(), expected_users, rtol=1e-4, atol=1e-5)
    # user-user weights: softmax of the raw co-counts over the (padded) list; empty list -> zero row
    row0 = np.zeros(n_u)
    np.add.at(
        row0,
        data.user_graph.ids[0, :6],
        np.exp(data.user_graph.weights[0, :6]) / np.exp(data.user_graph.weights[0, :6]).sum(),
    )
    np.testing.assert_allclose(s[0], row0, rtol=1e-5, atol=1e-7)
    assert np.all(s[3] == 0)
    np.testing.assert_allclose(s.sum(1)[[0, 1, 2]], 1.0, rtol=1e-5)
    assert set(np.flatnonzero(s[2])) == {data.user_graph.ids[2, 0]}
    assert set(np.flatnonzero(s[1])) <= set(data.user_graph.ids[1, :3])


def test_urn_padding_keeps_lists_and_draws_from_growing_list():
    n_valid = torch.tensor([5, 2, 1, 0, 7])
    torch.manual_seed(0)
    pos = urn_positions(n_valid, 5)
    assert pos[0].tolist() == [0, 1, 2, 3, 4] and pos[4].tolist() == [0, 1, 2, 3, 4]
    assert pos[1, :2].tolist() == [0, 1] and (pos[1] < 2).all()
    assert (pos[2] == 0).all()
    torch.manual_seed(0)
    assert torch.equal(pos, urn_positions(n_valid, 5))
    # first padded slot is uniform over the n original entries; the urn favours early copies
    torch.manual_seed(1)
    many = urn_positions(torch.full((20000,), 2), 4)
    assert abs((many[:, 2] == 0).float().mean().item() - 0.5) < 0.02
    # P(slot 3 == 0) = 1/2 (both halves of the urn are exchangeable) -- same marginal as i.i.d.
    assert abs((many[:, 3] == 0).float().mean().item() - 0.5) < 0.02


def test_loss_is_base2_bpr_plus_regulariser():
    data = model_kit.tiny_split()
    model = model_kit.build(DualGNN, params(reg_weight=0.5), data)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    with torch.no_grad():
        total = model.loss(users, pos, neg)
        u, i = model.representations()
    diff = (u[users] * i[pos]).sum(1) - (u[users] * i[neg]).sum(1)
    bpr = -torch.log2(torch.sigmoid(diff)).mean()
    p = model.preferences
    reg = (
        (p["image"][users] ** 2).mean()
        + (p["text"][users] ** 2).mean()
        + (model.user_weight**2).mean()
        + (model.item_weight**2).mean()
    )
    torch.testing.assert_close(total, (bpr + 0.5 * reg).detach())


def test_fusion_weights_start_as_softmax():
    model = model_kit.build(DualGNN, params())
    w = model.user_weight.detach()
    assert w.shape == (model.n_users, 2, 1)
    torch.testing.assert_close(w.sum(1), torch.ones(model.n_users, 1))


def test_zero_features_give_identical_content_and_finite_scores():
    data = model_kit.tiny_split()
    zeros = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(DualGNN, params(), data, zeros)
    assert torch.isfinite(model_kit.full_scores(model, data.n_users)).all()
    with torch.no_grad():
        c = model.mlp_out["text"](F.leaky_relu(model.mlp_in["text"](model.text_features)))
    torch.testing.assert_close(c, c[:1].expand_as(c))


def test_sparse_user_graph_trains_finite_and_deterministic():
    data = sparse_user_graph_data()
    model = model_kit.build(DualGNN, params(), data)
    assert np.isfinite(model_kit.train_epochs(model, data, 2)).all()
    losses = [model_kit.train_epochs(model_kit.build(DualGNN, params(), data, seed=0), data, 2) for _ in range(2)]
    assert losses[0] == losses[1]


def reference_loss(model, data, users, pos, neg) -> torch.Tensor:
    """The loss straight from the equations: dense graphs on the full (U+I) table, every row."""
    a = torch.as_tensor(dense_adjacency(data))
    s = model.user_graph_dense()
    reps = {}
    for m in ("image", "text"):
        f = getattr(model, f"{m}_features")
        x = F.normalize(torch.cat([model.preferences[m], model.mlp_out[m](F.leaky_relu(model.mlp_in[m](f)))]))
        reps[m] = x + a @ x + a @ (a @ x)
    n_u = model.n_users
    stacked = torch.stack([reps["image"][:n_u], reps["text"][:n_u]], dim=2)
    fused = torch.bmm(stacked, model.user_weight).squeeze(2)
    u = (fused + s @ fused)[users]
    items = (reps["image"] + reps["text"])[n_u:]
    diff = (u * items[pos]).sum(1) - (u * items[neg]).sum(1)
    p = model.preferences
    reg = (
        (p["image"][users] ** 2).mean()
        + (p["text"][users] ** 2).mean()
        + (model.user_weight**2).mean()
        + (model.item_weight**2).mean()
    )
    return -torch.log2(torch.sigmoid(diff)).mean() + model.hp.reg_weight * reg


def test_batch_loss_and_gradients_match_full_dense_computation():
    data = sparse_user_graph_data()
    model = model_kit.build(DualGNN, params(user_graph_k=6, reg_weight=0.1), data)
    users, pos, neg = torch.tensor([0, 3, 3, 17]), torch.tensor([1, 2, 3, 1]), torch.tensor([4, 2, 9, 30])
    fast = model.loss(users, pos, neg)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    slow = reference_loss(model, data, users, pos, neg)
    slow_grads = torch.autograd.grad(slow, list(model.parameters()))
    torch.testing.assert_close(fast, slow)
    for (name, _), x, y in zip(model.named_parameters(), fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-7, msg=name)
