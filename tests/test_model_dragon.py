import math

import numpy as np
import torch
import torch.nn.functional as F

from mmknockout.data.dataset import NeighbourGraph
from mmknockout.models import graph
from mmknockout.models.dragon import DRAGON

import model_kit


def params(**over) -> dict:
    return model_kit.params("DRAGON", **over)


def test_representations_match_hand_computation():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(DRAGON, params(), data, feats)
    model.on_epoch_start(0)
    u, i = model.representations()
    a = model.adj.to_dense()
    nu = data.n_users
    reps = []
    for gcn, f in ((model.gcns["image"], feats["image"]), (model.gcns["text"], feats["text"])):
        proj = gcn.mlp_out(F.leaky_relu(gcn.mlp_in(torch.tensor(f))))
        x = F.normalize(torch.cat([gcn.preference, proj]), dim=1)
        reps.append(x + a @ x + a @ a @ x)
    v, t = reps
    items = torch.cat([v[nu:], t[nu:]], 1)
    s = (
        0.1 * graph.knn_graph(torch.tensor(feats["image"]), 10, False).to_dense()
        + 0.9 * graph.knn_graph(torch.tensor(feats["text"]), 10, False).to_dense()
    )
    torch.testing.assert_close(i, items + s @ items)
    w = model.user_weight
    users = torch.cat([w[:, 0] * v[:nu], w[:, 1] * t[:nu]], 1)
    social = torch.stack(
        [(model.epoch_weights[k, :, None] * users[model.epoch_neighbours[k]]).sum(0) for k in range(nu)]
    )
    torch.testing.assert_close(u, users + social)
    # the per-user modality weights start as a softmax over the two modalities
    fresh = model_kit.build(DRAGON, params(), data, feats)
    torch.testing.assert_close(fresh.user_weight.sum(1), torch.ones(nu, 1))


def test_loss_is_log2_bpr_plus_regularisers():
    data = model_kit.tiny_split()
    model = model_kit.build(DRAGON, params(reg_weight=0.5), data)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 5, 9]), torch.tensor([3, 4, 7])
    ur, ir = model.representations()
    d = (ur[users] * ir[pos]).sum(1) - (ur[users] * ir[neg]).sum(1)
    expected = -torch.log2(torch.sigmoid(d)).mean() + 0.5 * (
        model.gcns["image"].preference[users].pow(2).mean()
        + model.gcns["text"].preference[users].pow(2).mean()
        + model.user_weight.pow(2).mean()
    )
    torch.testing.assert_close(model.loss(users, pos, neg), expected)
    assert math.isfinite(expected.item())


def test_user_neighbour_sampling_pads_from_own_list():
    data = model_kit.tiny_split(n_users=6)
    ids = np.full((6, 50), -1, dtype=np.int64)
    w = np.zeros((6, 50), dtype=np.float32)
    ids[0, :45], w[0, :45] = np.arange(45) % 6, np.arange(45)[::-1]  # >= 40 neighbours: first 40
    ids[1, :3], w[1, :3] = [2, 4, 5], [3, 2, 1]  # 3 neighbours: padded by resampling
    data.user_graph = NeighbourGraph(ids, w)  # users 2..5: none
    model = model_kit.build(DRAGON, params(), data)
    torch.manual_seed(0)
    model.on_epoch_start(1)
    nb, wt = model.epoch_neighbours, model.epoch_weights
    assert nb[0].tolist() == (np.arange(40) % 6).tolist()
    torch.testing.assert_close(wt[0], torch.softmax(torch.arange(45.0).flip(0)[:40], 0))
    assert nb[1, :3].tolist() == [2, 4, 5] and set(nb[1].tolist()) <= {2, 4, 5}
    count = {2: 3.0, 4: 2.0, 5: 1.0}
    torch.testing.assert_close(wt[1], torch.softmax(torch.tensor([count[j] for j in nb[1].tolist()]), 0))
    assert wt[2:].abs().sum() == 0 and nb[2:].abs().sum() == 0
    torch.manual_seed(0)
    model.on_epoch_start(1)
    assert torch.equal(nb, model.epoch_neighbours)


def test_degenerate_features_give_hub_graph_and_no_nan():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    for fill in (np.zeros_like, np.ones_like):
        model = model_kit.build(DRAGON, params(), data, {k: fill(v) for k, v in feats.items()})
        assert model.mm_adj.indices()[1].unique().tolist() == list(range(10))
        u, i = model.representations()
        assert torch.isfinite(u).all() and torch.isfinite(i).all()
        # identical features: every item gets the same modal projection before propagation
        f = torch.tensor(fill(feats["text"]))
        proj = model.gcns["text"].mlp_out(F.leaky_relu(model.gcns["text"].mlp_in(f)))
        assert torch.allclose(proj, proj[:1].expand_as(proj))
