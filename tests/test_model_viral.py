import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmknockout.errors import InputError
from mmknockout.models.losses import bpr_loss
from mmknockout.models.viral import VIRAL, AttentionBlock, unique_part

import model_kit


def params(**over) -> dict:
    return model_kit.params("VIRAL", **over)


def test_unique_visual_part_is_orthogonal_to_redundancy_and_guarded():
    gen = torch.Generator().manual_seed(0)
    v, r = torch.randn(50, 64, generator=gen), torch.randn(50, 64, generator=gen)
    dots = (unique_part(v, r) * r).sum(1)
    torch.testing.assert_close(dots, torch.zeros(50), atol=1e-5, rtol=0)
    # r = 0 (zero or constant knockouts): the eps guard leaves v unchanged and finite
    torch.testing.assert_close(unique_part(v, torch.zeros_like(r)), v)
    # inside the model, v' is orthogonal to the TBR redundancy r of the same rows
    model = model_kit.build(VIRAL, params())
    model.eval()
    with torch.no_grad():
        modal = model.modal_embeddings()
        v, t = modal["image"], modal["text"]
        _, v_unique, (_, _, h, h_v, h_t) = model.fusion(v, t)
        r = (h + h_v + h_t) / 3
        cos = F.cosine_similarity(v_unique, r, dim=1)
    assert cos.abs().max() < 1e-5


@pytest.mark.parametrize(("fusion", "width"), [("pid", 3), ("concat", 2), ("weighted_concat", 2), ("pooling", 1)])
def test_fused_widths(fusion, width):
    data = model_kit.tiny_split()
    model = model_kit.build(VIRAL, params(fusion=fusion), data)
    modal = model.modal_embeddings()
    users, items, views = model.fuse(modal["image"], modal["text"])
    d = model.embedding_size
    assert users.shape == (data.n_users, width * d) and items.shape == (data.n_items, width * d)
    assert (views is None) == (fusion != "pid")
    u, i = model.representations()
    assert u.shape[1] == i.shape[1] == width * d


def test_single_token_cross_attention_is_the_value_path():
    """With one key per query the attention weight is 1: the output is W_o (W_V t + b_V) + b_o,
    whatever the query (Eq. 7 on single modality vectors)."""
    torch.manual_seed(0)
    block = AttentionBlock(8, 2, 4, 0.0).eval()
    q, t = torch.randn(5, 1, 8), torch.randn(5, 1, 8)
    out, weights = block.attention(q, t, t, need_weights=True)
    torch.testing.assert_close(weights, torch.ones(5, 1, 1))
    mha = block.attention
    w_v, b_v = mha.in_proj_weight[16:], mha.in_proj_bias[16:]
    value_path = mha.out_proj(t @ w_v.T + b_v)
    torch.testing.assert_close(out, value_path)
    other, _ = block.attention(torch.randn(5, 1, 8), t, t)
    torch.testing.assert_close(other, out)


def reference_knn(image: np.ndarray, text: np.ndarray, k: int) -> torch.Tensor:
    """Dense symmetrically normalised unit-weight top-k graph of (cos^v + cos^t) / 2."""
    cos = [F.normalize(torch.tensor(x), dim=1) for x in (image, text)]
    s = 0.5 * (cos[0] @ cos[0].T + cos[1] @ cos[1].T)
    top = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
    a = torch.zeros_like(s).scatter_(1, top, 1.0)
    inv = a.sum(1).pow(-0.5)
    return inv[:, None] * a * inv[None, :]


def test_concat_scores_match_hand_written_reference():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    model = model_kit.build(VIRAL, params(fusion="concat", reg_lambda=0.0), data, feats)
    scores = model_kit.full_scores(model, data.n_users)
    nu = data.n_users
    a = model.adj.to_dense()
    sums = {}
    with torch.no_grad():
        for m in ("image", "text"):
            proj = model.projections[m]
            x = torch.cat([model.user_tables[m], torch.tensor(feats[m]) @ proj.weight.T + proj.bias])
            sums[m] = x + a @ x + a @ a @ x
        items = torch.cat([sums["text"][nu:], sums["image"][nu:]], 1)
        users = torch.cat([sums["text"][:nu], sums["image"][:nu]], 1)
        s = reference_knn(feats["image"], feats["text"], 10)
        g = torch.zeros(nu, nu)
        ids = data.user_graph.ids[:, :10]
        for u in range(nu):
            g[u, ids[u][ids[u] >= 0]] = 1.0
        inv = g.sum(1).clamp_min(1).pow(-0.5) * (g.sum(1) > 0)
        g = inv[:, None] * g * inv[None, :]
        z_i = s @ s @ items + items
        z_u = g @ g @ users + users
    torch.testing.assert_close(scores, z_u @ z_i.T, rtol=1e-4, atol=1e-4)
    # without fusion modules the loss is the plain BPR of these representations
    users_b, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 5, 9]), torch.tensor([3, 4, 7])
    expected = bpr_loss((z_u[users_b] * z_i[pos]).sum(1), (z_u[users_b] * z_i[neg]).sum(1))
    torch.testing.assert_close(model.loss(users_b, pos, neg), expected, rtol=1e-4, atol=1e-4)


def manual_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    logits = a @ b.T / tau
    log_prob = logits.diagonal() - torch.logsumexp(logits, dim=1)
    return -log_prob.mean()


def test_loss_is_bpr_plus_lambda_times_manual_info_nce():
    data = model_kit.tiny_split()
    model = model_kit.build(VIRAL, params(reg_lambda=0.5, tau=0.3), data)
    model.eval()
    users, pos, neg = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 5, 9, 5]), torch.tensor([3, 4, 7, 8])
    with torch.no_grad():
        z_u, z_i, views = model.propagate()
        h_vt, h_tv, h, h_v, h_t = (view[pos] for view in views)  # the batch's positive items, repeats kept
        nce = sum(manual_info_nce(x, y, 0.3) for x, y in ((h_vt, h_tv), (h, h_v), (h, h_t), (h_v, h_t)))
        rec = bpr_loss((z_u[users] * z_i[pos]).sum(1), (z_u[users] * z_i[neg]).sum(1))
        torch.testing.assert_close(model.fusion_loss(views, pos), nce)
        torch.testing.assert_close(model.loss(users, pos, neg), rec + 0.5 * nce)


def test_degenerate_features_give_finite_scores():
    data = model_kit.tiny_split()
    feats = model_kit.tiny_features(data.n_items)
    for fill in (np.zeros_like, np.ones_like):
        model = model_kit.build(VIRAL, params(), data, {k: fill(v) for k, v in feats.items()})
        assert model.item_item.indices()[1].unique().tolist() == list(range(10))  # hub graph
        u, i = model.representations()
        assert torch.isfinite(u).all() and torch.isfinite(i).all()


def test_similarity_weights_and_head_check():
    model = model_kit.build(VIRAL, params(graph_weights="similarity"))
    assert torch.isfinite(model.item_item.values).all() and (model.item_item.values >= 0).all()
    with pytest.raises(InputError, match="n_heads"):
        model_kit.build(VIRAL, params(n_heads=3))
