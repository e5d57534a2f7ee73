import numpy as np
import torch

from mmknockout.models.bpr import BPR
from mmknockout.models.lightgcn import LightGCN

import model_kit


def test_bpr_loss_equation():
    data = model_kit.tiny_split()
    model = model_kit.build(BPR, {"reg_weight": 0.5}, data)
    u, i, j = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    eu, ei, ej = (
        t.detach().numpy() for t in (model.user_embedding[u], model.item_embedding[i], model.item_embedding[j])
    )
    diff = (eu * ei).sum(1) - (eu * ej).sum(1)
    expected = (
        -np.log(1 / (1 + np.exp(-diff))).mean()
        + 0.5 * (np.linalg.norm(eu) + np.linalg.norm(ei) + np.linalg.norm(ej)) / 2
    )
    assert abs(model.loss(u, i, j).item() - expected) < 1e-5


def test_lightgcn_representation_is_layer_mean():
    data = model_kit.tiny_split()
    model = model_kit.build(LightGCN, {"n_layers": 2, "reg_weight": 0.0}, data)
    a = model.adj.to_dense()
    ego = torch.cat([model.user_embedding, model.item_embedding]).detach()
    expected = (ego + a @ ego + a @ a @ ego) / 3
    u, i = model.representations()
    torch.testing.assert_close(torch.cat([u, i]).detach(), expected)
