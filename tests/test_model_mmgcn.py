import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.models.graph import BipartiteBlocks, GraphOperator, bipartite_adjacency
from mmknockout.models.mmgcn import MMGCN, mean_adjacency
from mmknockout.models.ops import mean_square, row_normalize

import model_kit


def params(**over) -> dict:
    return model_kit.params("MMGCN", **over)


def lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.01 * x)


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def test_mean_adjacency_averages_neighbours():
    adj = bipartite_adjacency(np.array([0, 0, 1]), np.array([0, 1, 1]), 3, 2)  # user 2 isolated
    m = mean_adjacency(adj).to_dense().numpy()
    expected = np.zeros((5, 5))
    expected[0, [3, 4]] = 0.5
    expected[1, 4] = 1.0
    expected[3, 0] = 1.0
    expected[4, [0, 1]] = 0.5
    np.testing.assert_allclose(m, expected)


def dense_mean_adjacency(data) -> np.ndarray:
    return (
        mean_adjacency(bipartite_adjacency(data.train_users, data.train_items, data.n_users, data.n_items))
        .to_dense()
        .numpy()
    )


def branch_by_hand(branch, features: np.ndarray, id_emb: np.ndarray, a_mean: np.ndarray) -> np.ndarray:
    if branch.project is not None:
        features = features @ branch.project.weight.numpy().T + branch.project.bias.numpy()
    x = normalize(np.concatenate([branch.preference.numpy(), features]))
    for w, lin, gate in zip(branch.conv_weights, branch.linears, branch.gates, strict=True):
        h = lrelu(a_mean @ (x @ w.numpy()))
        x_hat = lrelu(x @ lin.weight.numpy().T + lin.bias.numpy()) + id_emb
        x = lrelu(np.concatenate([h, x_hat], 1) @ gate.weight.numpy().T + gate.bias.numpy())
    return x


def test_representation_is_mean_of_three_layer_branches():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(MMGCN, params(), data, feats)
    a_mean = dense_mean_adjacency(data)
    with torch.no_grad():
        id_emb = model.id_embedding.numpy()
        v = branch_by_hand(model.branches["image"], feats["image"], id_emb, a_mean)
        t = branch_by_hand(model.branches["text"], feats["text"], id_emb, a_mean)
        u, i = model.representations()
    expected = (v + t) / 2
    np.testing.assert_allclose(u.numpy(), expected[: data.n_users], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(i.numpy(), expected[data.n_users :], rtol=1e-4, atol=1e-5)
    # visual branch projects to 256, text enters raw; three layers with concatenation gates
    assert model.branches["image"].preference.shape == (data.n_users, 256)
    assert model.branches["text"].preference.shape == (data.n_users, feats["text"].shape[1])
    assert len(model.branches["text"].gates) == 3
    assert model.branches["text"].gates[0].in_features == feats["text"].shape[1] + 64


def test_toolbox_keeps_id_embedding_and_preferences_frozen():
    data = model_kit.tiny_split()
    model = model_kit.build(MMGCN, params(trainable_embeddings=False), data)
    names = {n for n, _ in model.named_parameters()}
    assert "id_embedding" not in names and not any(n.endswith("preference") for n in names)
    before = model.id_embedding.clone(), model.branches["text"].preference.clone()
    model_kit.train_epochs(model, data, 1)
    assert torch.equal(before[0], model.id_embedding)
    assert torch.equal(before[1], model.branches["text"].preference)
    learned = model_kit.build(MMGCN, params(trainable_embeddings=True), data)
    names = {n for n, _ in learned.named_parameters()}
    assert {"id_embedding", "branches.image.preference", "branches.text.preference"} <= names


def test_regulariser_terms():
    data = model_kit.tiny_split()
    model = model_kit.build(MMGCN, params(reg_weight=0.5), data)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    with torch.no_grad():
        total = model.loss(users, pos, neg)
        model.hp = dataclasses.replace(model.hp, reg_weight=0.0)
        bpr = model.loss(users, pos, neg)
    e = model.id_embedding
    items = torch.cat([pos, neg]) + model.n_users
    reg = (e[torch.cat([users, users])] ** 2 + e[items] ** 2).mean() + (model.branches["image"].preference ** 2).mean()
    torch.testing.assert_close(total - bpr, 0.5 * reg)


def test_constant_and_zero_features_give_finite_scores():
    data = model_kit.tiny_split()
    for fill in (0.0, 1.0):
        feats = {k: np.full_like(v, fill) for k, v in model_kit.tiny_features(data.n_items).items()}
        model = model_kit.build(MMGCN, params(), data, feats)
        assert torch.isfinite(model_kit.full_scores(model, data.n_users)).all()


def test_sparse_operator_matches_dense_product_and_gradient():
    torch.manual_seed(0)
    dense = torch.rand(7, 5) * (torch.rand(7, 5) < 0.4)
    dense[3] = 0  # an empty row
    op = GraphOperator(dense.to_sparse())
    torch.testing.assert_close(op.to_dense(), dense)
    x = torch.randn(5, 3, requires_grad=True)
    g = torch.randn(7, 3)
    op(x).backward(g)
    torch.testing.assert_close(x.grad, dense.T @ g)
    with torch.no_grad():
        torch.testing.assert_close(op(x), dense @ x)


def test_bipartite_blocks_reassemble_the_adjacency():
    data = model_kit.tiny_split()
    full = dense_mean_adjacency(data)
    blocks = BipartiteBlocks(
        mean_adjacency(bipartite_adjacency(data.train_users, data.train_items, data.n_users, data.n_items)),
        data.n_users,
    )
    u = data.n_users
    np.testing.assert_allclose(blocks.to_users.to_dense().numpy(), full[:u, u:], rtol=1e-6)
    np.testing.assert_allclose(blocks.to_items.to_dense().numpy(), full[u:, :u], rtol=1e-6)
    assert not full[:u, :u].any() and not full[u:, u:].any()


def test_row_normalize_and_mean_square_match_autograd_references():
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    x[2] = 0  # zero row: clamped norm, as F.normalize
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(6, 4)
    row_normalize(a).backward(g)
    F.normalize(b).backward(g)
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(row_normalize(x), F.normalize(x))
    a.grad, b.grad = None, None
    mean_square(a).backward()
    b.pow(2).mean().backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(mean_square(x), x.pow(2).mean())


def reference_loss(model, data, feats, users, pos, neg) -> torch.Tensor:
    """The loss straight from the equations: dense graph on the full (U+I) table, every row."""
    a = torch.as_tensor(dense_mean_adjacency(data), dtype=torch.float32)
    outs = []
    for m, branch in model.branches.items():
        f = torch.as_tensor(feats[m])
        items = branch.project(f) if branch.project is not None else f
        x = F.normalize(torch.cat([branch.preference, items]))
        for w, lin, gate in zip(branch.conv_weights, branch.linears, branch.gates, strict=True):
            h = F.leaky_relu(a @ (x @ w))
            x_hat = F.leaky_relu(lin(x)) + model.id_embedding
            x = F.leaky_relu(gate(torch.cat([h, x_hat], dim=1)))
        outs.append(x)
    rep = torch.stack(outs).mean(0)
    u, n_u = rep[users], model.n_users
    diff = (u * rep[pos + n_u]).sum(1) - (u * rep[neg + n_u]).sum(1)
    items = torch.cat([pos, neg]) + n_u
    reg = (model.id_embedding[torch.cat([users, users])] ** 2 + model.id_embedding[items] ** 2).mean() + (
        model.branches["image"].preference ** 2
    ).mean()
    return -F.logsigmoid(diff).mean() + model.hp.reg_weight * reg


def test_batch_loss_and_gradients_match_full_dense_computation():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(MMGCN, params(reg_weight=0.1), data, feats)
    users, pos, neg = torch.tensor([0, 5, 5, 17]), torch.tensor([1, 2, 3, 1]), torch.tensor([4, 2, 9, 30])
    fast = model.loss(users, pos, neg)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    slow = reference_loss(model, data, feats, users, pos, neg)
    slow_grads = torch.autograd.grad(slow, list(model.parameters()))
    torch.testing.assert_close(fast, slow)
    for (name, _), a, b in zip(model.named_parameters(), fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7, msg=name)
