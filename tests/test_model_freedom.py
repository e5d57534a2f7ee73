import numpy as np
import torch

from mmknockout.models import graph
from mmknockout.models.freedom import FREEDOM

import model_kit


def params(**over) -> dict:
    return model_kit.params("FREEDOM", **over)


def test_item_graph_mixes_unweighted_knn_graphs():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    p = params()
    model = model_kit.build(FREEDOM, p, data, feats)
    expected = (
        0.1 * graph.knn_graph(torch.tensor(feats["image"]), 10, False).to_dense()
        + 0.9 * graph.knn_graph(torch.tensor(feats["text"]), 10, False).to_dense()
    )
    torch.testing.assert_close(model.mm_adj.to_dense(), expected)
    # unit weights over k neighbours, symmetric normalisation by row sums: every entry is a/k
    allowed = np.array([0.0, 0.01, 0.09, 0.1])
    values = np.unique(expected.numpy())
    assert np.abs(values[:, None] - allowed[None, :]).min(axis=1).max() < 1e-6


def test_representation_adds_item_graph_embedding():
    data = model_kit.tiny_split()
    model = model_kit.build(FREEDOM, params(), data)
    u, i = model.representations()
    ego = torch.cat([model.user_embedding, model.item_embedding])
    a = model.adj.to_dense()
    lg = (ego + a @ ego + a @ a @ ego) / 3
    h = model.mm_adj.to_dense() @ model.item_embedding
    torch.testing.assert_close(i, lg[data.n_users :] + h)
    torch.testing.assert_close(u, lg[: data.n_users])


def test_edge_pruning_keeps_fraction_and_is_seeded():
    data = model_kit.tiny_split()
    model = model_kit.build(FREEDOM, params(), data)
    torch.manual_seed(0)
    model.on_epoch_start(0)
    a = model.train_adj
    torch.manual_seed(0)
    model.on_epoch_start(0)
    assert torch.equal(a.indices(), model.train_adj.indices())
    n_edges = len(data.train_users)
    assert a.indices().shape[1] == 2 * int(n_edges * (1 - 0.8))


def test_constant_and_zero_features_give_identical_hub_graph():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    ones = {k: np.ones_like(v) for k, v in feats.items()}
    zeros = {k: np.zeros_like(v) for k, v in feats.items()}
    g1 = model_kit.build(FREEDOM, params(), data, ones).mm_adj
    g0 = model_kit.build(FREEDOM, params(), data, zeros).mm_adj
    assert torch.equal(g1.to_dense(), g0.to_dense())
    cols = g1.indices()[1].unique()
    assert cols.tolist() == list(range(10))
