import numpy as np
import torch

from mmknockout.models.bm3 import BM3

import model_kit


def params(**over) -> dict:
    return model_kit.params("BM3", **over)


def _cos_loss(a: np.ndarray, b: np.ndarray) -> float:
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-8)
    return 1.0 - cos.mean()


def test_loss_matches_numpy_without_dropout():
    data = model_kit.tiny_split()
    p = params(dropout=0.0, n_layers=2, reg_weight=0.1)
    model = model_kit.build(BM3, p, data)
    users, pos = torch.tensor([0, 3, 7, 7]), torch.tensor([1, 4, 8, 2])
    with torch.no_grad():
        a = model.adj.to_dense().numpy()
        ego = torch.cat([model.user_embedding, model.item_embedding]).numpy()
        h = (ego + a @ ego + a @ a @ ego) / 3
        hu, hi = h[: data.n_users], h[data.n_users :] + model.item_embedding.numpy()
        w, b = model.predictor.weight.numpy(), model.predictor.bias.numpy()

        def g(x):
            return x @ w.T + b

        expected = _cos_loss(g(hu[users]), hi[pos]) + _cos_loss(g(hi[pos]), hu[users])
        modal = 0.0
        for m in ("text", "image"):
            proj = model.content.projections[m]
            hm = model.content.tables[m].numpy() @ proj.weight.numpy().T + proj.bias.numpy()
            modal += _cos_loss(g(hm[pos]), hi[pos]) + _cos_loss(g(hm[pos]), hm[pos])
        reg = (np.linalg.norm(hu) + np.linalg.norm(hi)) / data.n_items
        expected += 2.0 * modal + 0.1 * reg
    got = model.loss(users, pos, torch.tensor([5, 5, 5, 5])).item()
    assert abs(got - expected) < 1e-4


def test_scores_are_predicted_id_reps_and_features_are_trainable():
    data = model_kit.tiny_split()
    model = model_kit.build(BM3, params(), data)
    u, i = model.representations()
    hu, hi = model.propagate()
    torch.testing.assert_close(u, model.predictor(hu))
    torch.testing.assert_close(i, model.predictor(hi))
    # features only enter the loss: changing them leaves the scores untouched
    with torch.no_grad():
        model.content.tables["text"].mul_(0.0)
    torch.testing.assert_close(model.representations()[1], i)
    # ... and they receive gradients (freeze=False)
    model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])).backward()
    assert model.content.tables["image"].grad.abs().sum() > 0


def test_targets_carry_no_gradient():
    data = model_kit.tiny_split()
    model = model_kit.build(BM3, params(dropout=0.5), data)
    x = torch.ones(4, 3, requires_grad=True)
    t = model.targets(x)
    assert not t.requires_grad
    assert set(torch.unique(t).tolist()) <= {0.0, 2.0}


def test_zero_features_give_finite_loss_and_gradients():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(BM3, params(), data, feats)
    loss = model.loss(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _reference_loss(model, users, pos):
    """The loss on full tables: every latent projected and perturbed, then the batch rows read."""
    from mmknockout.models.bm3 import alignment_loss
    from mmknockout.models.losses import emb_norm_loss

    user_h, item_h = model.propagate()
    modal_h = model.modal_latents()
    user_t, item_t = model.targets(user_h), model.targets(item_h)
    modal_t = {m: model.targets(h) for m, h in modal_h.items()}
    g = model.predictor
    loss = alignment_loss(g(user_h[users]), item_t[pos]) + alignment_loss(g(item_h[pos]), user_t[users])
    modal = sum(
        alignment_loss(g(h[pos]), item_t[pos]) + alignment_loss(g(h[pos]), modal_t[m][pos]) for m, h in modal_h.items()
    )
    return loss + model.hp.reg_weight * emb_norm_loss(user_h, item_h) + model.hp.cl_weight * modal


def test_batch_rows_path_matches_full_tables_with_same_dropout():
    data = model_kit.tiny_split()
    model = model_kit.build(BM3, params(dropout=0.5, n_layers=2), data)
    users, pos = torch.tensor([0, 3, 7, 7, 12]), torch.tensor([1, 4, 8, 1, 1])
    results = []
    for compute in (model.loss, lambda u, p, n: _reference_loss(model, u, p)):
        torch.manual_seed(5)  # the same dropout draws
        model.zero_grad(set_to_none=True)
        value = compute(users, pos, pos)
        value.backward()
        results.append((value.item(), {n: p.grad.clone() for n, p in model.named_parameters()}, torch.rand(1)))
    assert abs(results[0][0] - results[1][0]) < 1e-6
    for name, grad in results[1][1].items():
        torch.testing.assert_close(results[0][1][name], grad, atol=1e-7, rtol=1e-5, msg=name)
    torch.testing.assert_close(results[0][2], results[1][2])  # the RNG stream stays aligned
    # rows outside the batch get an exactly-zero feature gradient
    untouched = torch.ones(data.n_items, dtype=torch.bool)
    untouched[pos] = False
    assert torch.count_nonzero(results[0][1]["content.tables.image"][untouched]) == 0
