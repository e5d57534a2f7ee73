import numpy as np
import pytest
import torch

from mmknockout.models import slmrec
from mmknockout.models.slmrec import SLMRec

import model_kit


def params(**over) -> dict:
    return model_kit.params("SLMRec", **over)


def _lin(layer, x):
    return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()


def _ce(logits: np.ndarray) -> float:
    m = logits.max(1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
    return float((lse - np.diag(logits)).mean())


def _numpy_branches(model, data):
    a = model.adj.to_dense().numpy()
    eu = model.user_embedding.detach().numpy()

    def lgn(items):
        x = np.concatenate([eu, items])
        layers = [x]
        for _ in range(3):
            layers.append(a @ layers[-1])
        out = np.mean(layers, axis=0)
        return out[: data.n_users], out[data.n_users :]

    feats = model_kit.tiny_features(data.n_items)
    norm = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in feats.items()}
    return {
        "id": lgn(model.item_embedding.detach().numpy()),
        "image": lgn(_lin(model.image_dense, norm["image"])),
        "text": lgn(_lin(model.text_dense, norm["text"])),
    }


def test_fusion_and_losses_match_numpy():
    data = model_kit.tiny_split()
    p = params(ssl_temp=0.5, ssl_alpha=0.3)
    model = model_kit.build(SLMRec, p, data)
    br = _numpy_branches(model, data)
    user = _lin(model.user_fusion, np.concatenate([br[k][0] for k in ("id", "image", "text")], 1))
    item = _lin(model.item_fusion, np.concatenate([br[k][1] for k in ("id", "image", "text")], 1))
    u_t, i_t = model.representations()
    np.testing.assert_allclose(u_t.detach().numpy(), user, atol=1e-5)
    np.testing.assert_allclose(i_t.detach().numpy(), item, atol=1e-5)

    users, pos = np.array([0, 5, 9, 11]), np.array([3, 1, 2, 7])
    un = user[users] / np.linalg.norm(user[users], axis=1, keepdims=True)
    inn = item[pos] / np.linalg.norm(item[pos], axis=1, keepdims=True)
    main = _ce(un @ inn.T / 0.2)
    x_id = _lin(model.g_i_iv, br["id"][1][pos])
    x_v = _lin(model.g_v_iv, br["image"][1][pos])
    x_ivt = _lin(model.g_iva_ivat, _lin(model.g_iv_iva, x_id))
    x_t = _lin(model.g_t_ivat, br["text"][1][pos])
    fac = _ce(x_id @ x_v.T / 0.5) + _ce(x_ivt @ x_t.T / 0.5)
    got = model.loss(torch.tensor(users), torch.tensor(pos), torch.tensor([0, 0, 0, 0])).item()
    assert abs(got - (main + 0.3 * fac)) < 1e-4


def test_features_normalised_once_and_frozen():
    data = model_kit.tiny_split()
    model = model_kit.build(SLMRec, params(), data)
    torch.testing.assert_close(model.text_feat.norm(dim=1), torch.ones(data.n_items))
    names = {n for n, _ in model.named_parameters()}
    assert "text_feat" not in names and "image_feat" not in names
    assert model.g_t_ivat.out_features == model.embedding_size // 2


def test_zero_features_give_bias_item_inputs():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(SLMRec, params(), data, feats)
    assert torch.count_nonzero(model.image_feat) == 0
    dense = model.image_dense(model.image_feat)
    torch.testing.assert_close(dense, model.image_dense.bias.expand_as(dense))
    loss = model.loss(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _reference_loss(model, users, pos):
    """The loss as written in the paper: full propagation, in-batch InfoNCE on the expanded batch."""
    import torch.nn.functional as F

    from mmknockout.models.losses import info_nce

    def plain_nce(a, b, t):
        return F.cross_entropy(a @ b.T / t, torch.arange(a.shape[0]))

    branches = model.propagate()
    user_reps, item_reps = model.fuse(branches)
    main = info_nce(user_reps[users], item_reps[pos], model.hp.temp)
    x_id = model.g_i_iv(branches["id"][1][pos])
    x_v = model.g_v_iv(branches["image"][1][pos])
    x_t = model.g_t_ivat(branches["text"][1][pos])
    fac = plain_nce(x_id, x_v, model.hp.ssl_temp) + plain_nce(
        model.g_iva_ivat(model.g_iv_iva(x_id)), x_t, model.hp.ssl_temp
    )
    return main + model.hp.ssl_alpha * fac


@pytest.mark.parametrize("spread_bytes", [2**27, 0], ids=["precomputed factors", "projection propagated"])
def test_batch_path_matches_full_propagation_with_repeats(monkeypatch, spread_bytes):
    monkeypatch.setattr(slmrec, "SPREAD_BYTES", spread_bytes)
    data = model_kit.tiny_split()
    model = model_kit.build(SLMRec, params(ssl_temp=0.5, ssl_alpha=0.3), data)
    assert (model.image_spread is None) == (spread_bytes == 0)
    # repeated users and items, as in real batches
    users, pos = torch.tensor([0, 5, 5, 9, 11, 0, 30]), torch.tensor([3, 1, 3, 2, 7, 3, 1])
    branches = model.propagate()
    ids = torch.tensor([2, 9, 17]), torch.tensor([0, 6, 39])
    fast = model.batch_branches(*ids)
    for name, (u, i) in branches.items():
        torch.testing.assert_close(fast[name][0], u[ids[0]], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fast[name][1], i[ids[1]], atol=1e-6, rtol=1e-5)

    grads = []
    for compute in (lambda: model.loss(users, pos, pos), lambda: _reference_loss(model, users, pos)):
        model.zero_grad()
        value = compute()
        value.backward()
        grads.append((value.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert abs(grads[0][0] - grads[1][0]) < 1e-5
    for name, grad in grads[1][1].items():
        torch.testing.assert_close(grads[0][1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_counted_info_nce_equals_expanded_batch():
    import torch.nn.functional as F

    from mmknockout.models.losses import counted_info_nce

    torch.manual_seed(0)
    a, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    batch = torch.tensor([0, 2, 2, 5, 0, 2])
    distinct, at, counts = torch.unique(batch, return_inverse=True, return_counts=True)
    expected = F.cross_entropy(a[batch] @ b[batch].T / 0.3, torch.arange(6))
    got = counted_info_nce(a[distinct], b[distinct], torch.arange(3), counts.double(), 0.3, weights=counts.double())
    torch.testing.assert_close(got, expected)
    rows = torch.randn(6, 4, dtype=torch.float64)  # distinct rows, repeated columns
    expected = F.cross_entropy(rows @ b[batch].T / 0.3, torch.arange(6))
    torch.testing.assert_close(counted_info_nce(rows, b[distinct], at, counts.double(), 0.3), expected)
