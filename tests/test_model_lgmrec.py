import numpy as np
import torch

from mmknockout.models import lgmrec, ops
from mmknockout.models.lgmrec import LGMRec, hyper_contrastive
from mmknockout.models.ops import FixedProjection

import model_kit


def params(**over) -> dict:
    return model_kit.params("LGMRec", **over)


def test_local_modal_branch_matches_numpy():
    data = model_kit.tiny_split()
    model = model_kit.build(LGMRec, params(n_mm_layers=2), data)
    r = data.train_matrix.toarray()
    a = model.adj.to_dense().numpy()
    feats = model_kit.tiny_features(data.n_items)
    item_f = feats["text"] @ model.local_trs["text"].detach().numpy()
    user_f = (r @ item_f) / r.sum(1, keepdims=True)  # mean of the user's items
    expected = a @ (a @ np.concatenate([user_f, item_f]))
    np.testing.assert_allclose(model.local_modal(model.project("text")[0]).detach().numpy(), expected, atol=1e-5)


def test_hypergraph_layer_and_contrastive_loss_match_hand_computation():
    data = model_kit.tiny_split()
    model = model_kit.build(LGMRec, params(n_hyper_layer=2), data)
    model.eval()  # no dropout on the assignments
    hi, hu = torch.rand(data.n_items, 4), torch.rand(data.n_users, 4)
    emb = torch.randn(data.n_items, 8)
    zu, zi, hu_out, hi_out, edge = model.hypergraph(hi, hu, emb)
    lat1 = hi.T @ emb
    lat2 = hi.T @ (hi @ lat1)
    torch.testing.assert_close(zi, hi @ lat2)
    torch.testing.assert_close(zu, hu @ lat2)
    torch.testing.assert_close(edge, lat2)
    assert torch.equal(hu_out, hu) and torch.equal(hi_out, hi)
    # InfoNCE written as in the paper: -sum log(exp(s+/tau) / sum_k exp(s_k/tau)), cosine s
    a, p, c = (np.random.default_rng(0).normal(size=s) for s in ((3, 5), (3, 5), (7, 5)))

    def n(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    pos = np.exp((n(a) * n(p)).sum(1) / 0.2)
    ttl = np.exp(n(a) @ n(c).T / 0.2).sum(1)
    expected = -np.log(pos / ttl).sum()
    got = hyper_contrastive(*(torch.tensor(x, dtype=torch.float32) for x in (a, p, c)), 0.2).item()
    assert abs(got - expected) < 1e-3 * abs(expected)


def test_representation_combines_local_and_global_parts():
    data = model_kit.tiny_split()
    model = model_kit.build(LGMRec, params(), data)
    model.eval()
    torch.manual_seed(5)
    u, i = model.representations()
    torch.manual_seed(5)
    asg = {m: model.hyperedges(model.feat(m) @ model.hyper_trs[m]) for m in ("image", "text")}
    cf = model.collaborative()
    local = sum(
        torch.nn.functional.normalize(model.local_modal(model.feat(m) @ model.local_trs[m])) for m in ("image", "text")
    )
    glob = sum(torch.cat(model.hypergraph(*asg[m], cf[data.n_users :])[:2]) for m in ("image", "text"))
    expected = cf + local + 0.3 * torch.nn.functional.normalize(glob)
    torch.testing.assert_close(torch.cat([u, i]), expected)
    # as in MMRec, evaluation keeps sampling Gumbel noise: another draw gives other scores
    u2, _ = model.representations()
    assert not torch.allclose(u, u2)
    # hyperedge assignments are soft and sum to one
    torch.testing.assert_close(asg["text"][0].sum(1), torch.ones(data.n_items))


def test_features_are_frozen_and_zero_features_remove_modal_part():
    data = model_kit.tiny_split()
    feats = {k: np.zeros_like(v) for k, v in model_kit.tiny_features(data.n_items).items()}
    model = model_kit.build(LGMRec, params(), data, feats)
    names = {n for n, _ in model.named_parameters()}
    assert "text_feat" not in names and "image_feat" not in names
    assert torch.count_nonzero(model.local_modal(model.project("image")[0])) == 0
    loss = model.loss(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_factored_blocked_contrastive_matches_plain_infonce(monkeypatch):
    monkeypatch.setattr(ops, "ROW_BLOCK", 3)  # several blocks and a ragged last one
    g = torch.Generator().manual_seed(0)
    assign = torch.rand(30, 4, generator=g)
    assign[7] = 0  # a zero candidate (all assignments dropped): cosine 0 everywhere
    leaves = [torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g), assign, torch.randn(4, 6, generator=g)]
    results = []
    for factored in (True, False):
        anchor, positive, h, edge = (x.clone().requires_grad_() for x in leaves)
        cand = h @ edge
        if factored:
            loss = hyper_contrastive(anchor, positive, cand, 0.2, (h, edge))
        else:  # the toolbox's formula, with autograd
            a, p, c = (torch.nn.functional.normalize(x, dim=1) for x in (anchor, positive, cand))
            loss = -torch.log(torch.exp((a * p).sum(1) / 0.2) / torch.exp(a @ c.T / 0.2).sum(1)).sum()
        loss.backward()
        results.append([loss.detach()] + [x.grad for x in (anchor, positive, h, edge)])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_fixed_projection_gradient():
    g = torch.Generator().manual_seed(1)
    x, w, up = (
        torch.randn(9, 5, generator=g),
        torch.randn(5, 3, generator=g, requires_grad=True),
        torch.randn(9, 3, generator=g),
    )
    (FixedProjection.apply(x, w) * up).sum().backward()
    torch.testing.assert_close(w.grad, x.T @ up)


def test_batch_rows_loss_matches_full_forward():
    data = model_kit.tiny_split()
    model = model_kit.build(LGMRec, params(), data)
    users, pos, neg = torch.tensor([0, 3, 3, 7]), torch.tensor([1, 2, 5, 9]), torch.tensor([4, 4, 6, 8])
    torch.manual_seed(11)
    got = model.loss(users, pos, neg)
    torch.manual_seed(11)  # same Gumbel noise and dropout: the full table, then the batch rows
    user_e, item_e, hyper = model.propagate()
    u, i, j = user_e[users], item_e[pos], item_e[neg]
    v, t = hyper["image"], hyper["text"]
    hcl = hyper_contrastive(v.z_user[users], t.z_user[users], t.z_user, 0.2) + hyper_contrastive(
        v.z_item[pos], t.z_item[pos], t.z_item, 0.2
    )
    expected = (
        lgmrec.bpr_loss((u * i).sum(1), (u * j).sum(1))
        + model.hp.cl_weight * hcl
        + model.hp.reg_weight * lgmrec.emb_norm_loss(u, i, j)
    )
    torch.testing.assert_close(got, expected)
