import numpy as np
import torch

from mmknockout.models.vbpr import VBPR

import model_kit


def params(**over) -> dict:
    return model_kit.params("VBPR", **over)


def test_item_representation_concatenates_id_and_projected_text_then_image():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(VBPR, params(), data, feats)
    raw = np.concatenate([feats["text"], feats["image"]], axis=1)
    w, b = model.item_linear.weight.detach().numpy(), model.item_linear.bias.detach().numpy()
    expected = np.concatenate([model.item_embedding.detach().numpy(), raw @ w.T + b], axis=1)
    np.testing.assert_allclose(model.item_representations().detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert model.user_embedding.shape[1] == 2 * model.embedding_size


def test_constant_features_reduce_ranking_to_id_half():
    data = model_kit.tiny_split()
    feats = {k: np.full_like(v, 3.0) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(VBPR, params(), data, feats)
    scores = model_kit.full_scores(model, data.n_users)
    d = model.embedding_size
    id_scores = model.user_embedding[:, :d] @ model.item_embedding.T
    offset = (scores - id_scores).detach()
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=0, atol=1e-5)
