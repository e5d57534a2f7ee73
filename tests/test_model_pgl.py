import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmknockout.errors import InputError
from mmknockout.models import graph
from mmknockout.models.pgl import PGL

import model_kit


def params(**over) -> dict:
    return model_kit.params("PGL", **over)


def test_items_are_normalised_projected_features_and_propagation_matches():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(PGL, params(), data, feats)
    items = torch.cat(
        [
            F.normalize(model.content.projections["image"](torch.tensor(feats["image"])), dim=1),
            F.normalize(model.content.projections["text"](torch.tensor(feats["text"])), dim=1),
        ],
        1,
    )
    assert items.shape == (data.n_items, 128)
    users = torch.cat([model.user_image, model.user_text], 1)
    ego = torch.cat([users, items])
    a = model.adj.to_dense()
    lg = (ego + a @ ego + a @ a @ ego) / 3
    s = (
        0.1 * graph.knn_graph(torch.tensor(feats["image"]), 10, False).to_dense()
        + 0.9 * graph.knn_graph(torch.tensor(feats["text"]), 10, False).to_dense()
    )
    torch.testing.assert_close(model.mm_adj.to_dense(), s)
    u, i = model.representations()
    torch.testing.assert_close(u, lg[: data.n_users])
    torch.testing.assert_close(i, lg[data.n_users :] + s @ items)
    # features are trainable (the knocked-out input is only the initialisation)
    assert model.content.tables["text"].requires_grad and model.content.tables["image"].requires_grad


def test_local_subgraph_keeps_fraction_is_normalised_and_seeded():
    data = model_kit.tiny_split()
    model = model_kit.build(PGL, params(), data)
    torch.manual_seed(0)
    model.on_epoch_start(0)
    sub = model.train_adj
    n_edges = data.train_matrix.nnz
    assert sub.indices().shape[1] == 2 * int(n_edges * 0.3)
    dense = sub.to_dense().numpy()
    binary = (dense > 0).astype(float)
    deg = binary.sum(1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0)
    np.testing.assert_allclose(dense, inv[:, None] * binary * inv[None, :], atol=1e-6)
    assert ((dense > 0) <= (model.adj.to_dense().numpy() > 0)).all()
    torch.manual_seed(0)
    model.on_epoch_start(0)
    assert torch.equal(sub.indices(), model.train_adj.indices())


def test_zero_reg_weight_is_plain_bpr_and_infonce_term_when_positive():
    data = model_kit.tiny_split()
    model = model_kit.build(PGL, params(), data)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 5, 9]), torch.tensor([3, 4, 7])
    ur, ir = model.propagate(model.adj)
    d = (ur[users] * ir[pos]).sum(1) - (ur[users] * ir[neg]).sum(1)
    torch.testing.assert_close(model.loss(users, pos, neg), -F.logsigmoid(d).mean())
    model_cl = model_kit.build(PGL, params(reg_weight=0.5, dropout=0.0), data)
    ur, ir = model_cl.propagate(model_cl.adj)
    d = (ur[users] * ir[pos]).sum(1) - (ur[users] * ir[neg]).sum(1)

    def nce(x):  # identical views (no dropout): -log(e^{1/t} / sum_j e^{cos_ij/t})
        z = F.normalize(x, dim=1)
        logits = z @ z.T / 0.2
        return (torch.logsumexp(logits, 1) - logits.diagonal()).mean()

    expected = -F.logsigmoid(d).mean() + 0.5 * (nce(ur[users]) + nce(ir[pos])) / 2
    torch.testing.assert_close(model_cl.loss(users, pos, neg), expected)


def test_global_mode_is_rejected_clearly():
    with pytest.raises(InputError, match="local"):
        model_kit.build(PGL, params(mode="global"))


def test_degenerate_features_give_hub_graph_and_no_nan():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    for fill in (np.zeros_like, np.ones_like):
        model = model_kit.build(PGL, params(), data, {k: fill(v) for k, v in feats.items()})
        assert model.mm_adj.indices()[1].unique().tolist() == list(range(10))
        items = model.item_embeddings()
        assert torch.isfinite(items).all()
        assert torch.allclose(items, items[:1].expand_as(items))  # every item starts identical
