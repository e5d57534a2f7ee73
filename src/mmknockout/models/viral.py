"""VIRAL: per-modality user-item LightGCN, information-aware (PID) fusion, item-item and user-user graphs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import SplitData
from ..errors import InputError
from .base import Features, Recommender
from .blocks import xavier_table
from .graph import (
    GraphOperator,
    cosine_normalize,
    neighbour_graph_adjacency,
    normalized_adjacency,
    sparse_from_edges,
    stable_topk,
    sym_normalize,
)
from .losses import bpr_loss, info_nce_distinct
from .params import HyperParams, hp

#: added to :math:`\|r\|^2` in Eq. 12, so that a zero redundancy vector (all-zero or constant
#: knockouts) leaves :math:`v' = v` instead of 0/0
PROJECTION_EPS = 1e-8

#: fusion variants: the paper's information-aware fusion and the three of its Table 2 ablation
FUSIONS = ("pid", "pooling", "concat", "weighted_concat")

#: width of the fused representation, in units of ``embedding_size``
FUSION_WIDTH = {"pid": 3, "pooling": 1, "concat": 2, "weighted_concat": 2}


@dataclass(frozen=True, kw_only=True)
class VIRALParams(HyperParams):
    """VIRAL's hyper-parameters (config/models/VIRAL.yaml)."""

    n_ui_layers: int = hp(2, "LightGCN layers on each modality's user-item graph (layer sum, Eq. 2)", ge=0)
    n_ii_layers: int = hp(2, "propagations on the item-item kNN graph (Eq. 3)", ge=0)
    n_uu_layers: int = hp(2, "propagations on the user-user co-interaction graph", ge=0)
    knn_k: int = hp(10, "neighbours per item in the item-item graph of S = (S^v + S^t) / 2", ge=1)
    uu_k: int = hp(10, "neighbours per user taken from the dataset's user graph", ge=1)
    graph_weights: str = hp(
        "unit",
        "edge weights of both homogeneous graphs before normalisation: unit, or similarity (cosine >= 0 / counts)",
        choices=("unit", "similarity"),
    )
    reg_lambda: float = hp(0.1, "weight lambda of the fusion losses L_s + L_r (Eq. 17)", ge=0)
    tau: float = hp(0.2, "InfoNCE temperature of L_s and L_r (Eqs. 15-16)", gt=0)
    n_heads: int = hp(2, "attention heads of the fusion transformers (must divide embedding_size)", ge=1)
    ffn_mult: int = hp(4, "width of the transformers' feed-forward layer, in units of embedding_size", ge=1)
    n_tf_layers: int = hp(1, "blocks in the CSE cross-modal transformer and in the TBR encoder F", ge=1)
    dropout: float = hp(0.0, "dropout inside the fusion transformers (training only)", ge=0, lt=1)
    fusion: str = hp("pid", "fusion: pid (Eqs. 7-14), or Table 2's pooling, concat, weighted_concat", choices=FUSIONS)


class AttentionBlock(nn.Module):
    r"""One post-norm transformer block with a separate query and key/value sequence:
    :math:`a = \mathrm{LN}(q + \mathrm{MHA}(q, x, x))`, :math:`\mathrm{LN}(a + W_2\,\mathrm{GELU}(W_1 a))`.

    Cross-attention when ``x`` is another modality (CSE), self-attention when ``x`` is ``q`` (TBR).
    """

    def __init__(self, d: int, n_heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * d, d))
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(q, x, x, need_weights=False)
        a = self.norm1(q + self.drop(attended))
        return self.norm2(a + self.drop(self.ffn(a)))


class InformationAwareFusion(nn.Module):
    r"""CSE (Eqs. 7-8), TBR (Eqs. 9-11) and the unique visual part (Eq. 12) for rows ``v``, ``t`` [N, d].

    ``forward`` returns ``(s, v', views)`` with ``views = (h_{v->t}, h_{t->v}, h, h_v, h_t)``.
    """

    def __init__(self, d: int, n_heads: int, ffn_mult: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        self.cross = nn.ModuleList(AttentionBlock(d, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.encoder = nn.ModuleList(AttentionBlock(d, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.project = nn.Linear(d, d)
        self.mask_v = xavier_table(1, d)
        self.mask_t = xavier_table(1, d)

    def trans(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``Trans(query, context)`` of Eq. 7 on single tokens [N, d]."""
        q, x = query.unsqueeze(1), context.unsqueeze(1)
        for block in self.cross:
            q = block(q, x)
        return q.squeeze(1)

    def redundancy_views(self, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h, h_v, h_t)`` of Eq. 10: the three sequences of Eq. 9 through F (one batch), the mean of
        F's two output tokens, then g."""
        mv, mt = self.mask_v.expand_as(v), self.mask_t.expand_as(t)
        first = torch.cat([v, v, mv])
        second = torch.cat([t, mt, t])
        x = torch.stack([first, second], dim=1)  # [3N, 2, d]
        for block in self.encoder:
            x = block(x, x)
        return self.project(x.mean(dim=1)).chunk(3)

    def forward(self, v: torch.Tensor, t: torch.Tensor):
        h_vt, h_tv = self.trans(v, t), self.trans(t, v)
        s = (h_vt + h_tv) / 2
        h, h_v, h_t = self.redundancy_views(v, t)
        r = (h + h_v + h_t) / 3
        return s, unique_part(v, r), (h_vt, h_tv, h, h_v, h_t)


def unique_part(v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    r"""Eq. 12 row-wise: :math:`v - \frac{v^\top r}{\|r\|^2 + \epsilon} r` (``PROJECTION_EPS``)."""
    coef = (v * r).sum(1, keepdim=True) / (r.pow(2).sum(1, keepdim=True) + PROJECTION_EPS)
    return v - coef * r


def mixed_similarity_knn(image: torch.Tensor, text: torch.Tensor, k: int, weighted: bool, chunk_size: int = 1024):
    r"""Top-``k`` neighbours (self included, lowest-index ties) of :math:`S = \frac12(S^v + S^t)`,
    the mean of the two cosine similarity matrices; symmetrically normalised sparse n x n graph with
    unit weights, or (``weighted``) weights :math:`\max(S, 0)`."""
    xv, xt = cosine_normalize(image.float()), cosine_normalize(text.float())
    n = xv.shape[0]
    k = min(k, n)
    idx_parts, sim_parts = [], []
    for start in range(0, n, chunk_size):
        scores = 0.5 * (xv[start : start + chunk_size] @ xv.T + xt[start : start + chunk_size] @ xt.T)
        idx, values = stable_topk(scores, k)
        idx_parts.append(idx)
        sim_parts.append(values)
    idx, sim = torch.cat(idx_parts), torch.cat(sim_parts)
    rows = torch.arange(n).repeat_interleave(k)
    values = sim.reshape(-1).clamp_min(0) if weighted else torch.ones(rows.numel())
    return sym_normalize(sparse_from_edges(rows, idx.reshape(-1), values.float(), (n, n)))


class VIRAL(Recommender):
    r"""VIRAL (Kieu et al., "Enhancing Multimodal Recommendations with Vision-Language Models and
    Information-Aware Fusion", 2025); no public code, implemented from the paper.

    **Heterogeneous graphs** (Eqs. 1-2), per modality :math:`m \in \{v, t\}` on the symmetrically
    normalised user-item graph :math:`A`: :math:`x_m^{(0)} = [U_m;\ W_m f^m + b_m]` (Xavier user
    table; the projection of the raw, frozen features to d is the one the paper implies),
    :math:`[\bar u_m; \bar i_m] = \sum_{l=0}^{L} A^l x_m^{(0)}` with L = ``n_ui_layers`` (a sum, not
    LightGCN's mean).

    **Information-aware fusion** (``fusion: pid``), applied with shared parameters to the items'
    :math:`(\bar i_v, \bar i_t)` and to the users' :math:`(\bar u_v, \bar u_t)` (the paper leaves
    the user side's inputs unwritten; this is the DRAGON-consistent reading):

    * CSE (Eqs. 7-8): :math:`h_{v\to t} = \mathrm{Trans}(v, t)`, :math:`h_{t\to v} =
      \mathrm{Trans}(t, v)` (one shared block stack), :math:`s = \frac12(h_{v\to t} + h_{t\to v})`.
      Trans = ``n_tf_layers`` post-norm blocks: multi-head attention (``n_heads``) with residual and
      LayerNorm, then a GELU FFN of width ``ffn_mult`` * d with residual and LayerNorm. With one
      token per modality the attention weight is 1, so the attention output is
      :math:`W_o(W_V t + b_V) + b_o` whatever the query (the query enters through the residual).
    * TBR (Eqs. 9-11): the 2-token sequences :math:`[v, t]`, :math:`[v, M_t]`, :math:`[M_v, t]`
      (learnable mask tokens) through a shared encoder F (``n_tf_layers`` self-attention blocks as
      above), pooled by the mean of F's two output tokens, then a linear g: :math:`h, h_v, h_t`;
      :math:`r = \frac13(h + h_v + h_t)`.
    * Unique visual part (Eq. 12): :math:`v' = v - \frac{v^\top r}{\|r\|^2 + \epsilon} r`,
      :math:`\epsilon` = ``PROJECTION_EPS`` (1e-8), so :math:`r = 0` gives :math:`v' = v`.
    * Item :math:`i_f = [t \| s \| v']` (Eq. 13); user :math:`u_f = [w_0 t \| w_1 s \| w_2 v']`
      (Eq. 14) with :math:`w = \mathrm{softmax}(u^w)` of a per-user Xavier-normal logit table.

    Ablation fusions (Table 2; no CSE/TBR modules, hence no fusion losses): ``pooling``
    :math:`\frac12(t + v)` (d), ``concat`` :math:`[t \| v]` (2d), ``weighted_concat`` items
    :math:`[t \| v]`, users :math:`[w_0 t \| w_1 v]` with per-user softmax weights (2d).

    **Homogeneous graphs** (Eq. 3), on the fused rows: items :math:`h^{(L)} = S^{L} i_f`, L =
    ``n_ii_layers``, with the top-``knn_k`` graph of :math:`S = \frac12(S^v + S^t)` (cosines of the
    raw features, self included, lowest-index ties), symmetrically normalised (unstated in the
    paper; as DRAGON/FREEDOM), unit weights or (``graph_weights: similarity``) :math:`\max(S, 0)`;
    users: :math:`G^{L} u_f` with L = ``n_uu_layers`` and G the first ``uu_k`` neighbours of
    ``data.user_graph`` (co-interaction top-k), symmetrically normalised, unit weights or the
    counts. Scores (Eq. 4): :math:`z = h^{(L)} + x_f` (the "residual fusion signal"),
    :math:`\hat y_{ui} = z_u^\top z_i`.

    **Loss** (Eqs. 15-17): :math:`L_{BPR} + \lambda (L_s + L_r)`, :math:`L_s =
    \mathrm{NCE}(h_{v\to t}, h_{t\to v})`, :math:`L_r = \mathrm{NCE}(h, h_v) + \mathrm{NCE}(h, h_t)
    + \mathrm{NCE}(h_v, h_t)`: in-batch cosine InfoNCE with temperature ``tau`` over the batch's
    positive items (distinct rows, weighted by their counts); :math:`\lambda` = ``reg_lambda``.

    Args (:class:`VIRALParams`): ``embedding_size`` (64), ``n_ui_layers`` (2), ``n_ii_layers`` (2),
    ``n_uu_layers`` (2), ``knn_k`` (10), ``uu_k`` (10), ``graph_weights`` ('unit'), ``reg_lambda``
    (0.1), ``tau`` (0.2), ``n_heads`` (2), ``ffn_mult`` (4), ``n_tf_layers`` (1), ``dropout`` (0.0),
    ``fusion`` ('pid'). Unstated in the paper and chosen here: ``uu_k``, ``graph_weights``, ``tau``,
    the transformer's size, the pooling of F, the residual form, the normalisations, Xavier-uniform
    weights with zero biases for the feature projections.

    Degenerate features: zero rows have cosine 0 and ties go to the lowest index, so zero or
    constant features give the hub item graph (every item links to items 0..k-1; all-zero
    similarity weights give an empty graph); LayerNorm keeps s and r finite and the eps guard
    keeps v' finite when r vanishes.
    """

    Params = VIRALParams
    family = "hybrid"
    requires = ("user_graph",)

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d, hp_ = self.embedding_size, self.hp
        if d % hp_.n_heads:
            raise InputError(f"VIRAL: n_heads ({hp_.n_heads}) must divide embedding_size ({d})")
        for m in ("image", "text"):
            self.register_buffer(f"{m}_features", features[m].clone().float())
        self.user_tables = nn.ParameterDict({m: xavier_table(self.n_users, d) for m in ("image", "text")})
        self.projections = nn.ModuleDict({m: nn.Linear(features[m].shape[1], d) for m in ("image", "text")})
        for layer in self.projections.values():
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        if hp_.fusion == "pid":
            self.fusion = InformationAwareFusion(d, hp_.n_heads, hp_.ffn_mult, hp_.n_tf_layers, hp_.dropout)
        if hp_.fusion in ("pid", "weighted_concat"):
            parts = FUSION_WIDTH[hp_.fusion]
            self.user_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_users, parts)))

        weighted = hp_.graph_weights == "similarity"
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        self.item_item = GraphOperator(
            mixed_similarity_knn(features["image"], features["text"], hp_.knn_k, weighted).coalesce()
        )
        self.user_user = GraphOperator(self.user_user_matrix(data, weighted))

    def user_user_matrix(self, data: SplitData, weighted: bool) -> torch.Tensor:
        """First ``uu_k`` neighbours of the dataset's user graph, symmetrically normalised."""
        ids = np.asarray(data.user_graph.ids)[:, : self.hp.uu_k]
        if ids.shape[0] != self.n_users:
            raise InputError("VIRAL: the user graph does not match the dataset's users")
        weights = np.asarray(data.user_graph.weights)[:, : self.hp.uu_k] if weighted else None
        return sym_normalize(neighbour_graph_adjacency(ids, weights, self.n_users))

    # ----- representations ----------------------------------------------------------------------
    def modal_embeddings(self) -> dict[str, torch.Tensor]:
        """Eqs. 1-2: per modality the layer sum of LightGCN on [users; projected items], (U+I) x d."""
        out = {}
        for m in ("image", "text"):
            x = torch.cat([self.user_tables[m], self.projections[m](self.get_buffer(f"{m}_features"))])
            total = x
            for _ in range(self.hp.n_ui_layers):
                x = self.adj(x)
                total = total + x
            out[m] = total
        return out

    def user_weights(self) -> torch.Tensor:
        return torch.softmax(self.user_logits, dim=1)

    def fuse(self, v: torch.Tensor, t: torch.Tensor):
        """Fused (users, items) tables and the fusion views of the items (None without CSE/TBR)."""
        nu = self.n_users
        kind = self.hp.fusion
        if kind == "pooling":
            x = (t + v) / 2
            return x[:nu], x[nu:], None
        if kind in ("concat", "weighted_concat"):
            items = torch.cat([t[nu:], v[nu:]], dim=1)
            if kind == "concat":
                return torch.cat([t[:nu], v[:nu]], dim=1), items, None
            w = self.user_weights()
            return torch.cat([w[:, :1] * t[:nu], w[:, 1:] * v[:nu]], dim=1), items, None
        s, v_unique, views = self.fusion(v, t)
        w = self.user_weights()
        users = torch.cat([w[:, :1] * t[:nu], w[:, 1:2] * s[:nu], w[:, 2:] * v_unique[:nu]], dim=1)
        items = torch.cat([t[nu:], s[nu:], v_unique[nu:]], dim=1)
        return users, items, tuple(view[nu:] for view in views)

    def propagate(self):
        """``(z_u, z_i, item views)``: homogeneous propagation of the fused tables plus the residual."""
        modal = self.modal_embeddings()
        users, items, views = self.fuse(modal["image"], modal["text"])
        h_u, h_i = users, items
        for _ in range(self.hp.n_uu_layers):
            h_u = self.user_user(h_u)
        for _ in range(self.hp.n_ii_layers):
            h_i = self.item_item(h_i)
        return h_u + users, h_i + items, views

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        z_u, z_i, _ = self.propagate()
        return z_u, z_i

    def fusion_loss(self, views, items: torch.Tensor) -> torch.Tensor:
        """L_s + L_r (Eqs. 15-16) over the rows ``items``."""
        h_vt, h_tv, h, h_v, h_t = views
        tau = self.hp.tau
        return (
            info_nce_distinct(h_vt, h_tv, items, tau)
            + info_nce_distinct(h, h_v, items, tau)
            + info_nce_distinct(h, h_t, items, tau)
            + info_nce_distinct(h_v, h_t, items, tau)
        )

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        z_u, z_i, views = self.propagate()
        u = z_u.index_select(0, users)
        rec = bpr_loss((u * z_i.index_select(0, pos)).sum(1), (u * z_i.index_select(0, neg)).sum(1))
        if views is None or self.hp.reg_lambda == 0:
            return rec
        return rec + self.hp.reg_lambda * self.fusion_loss(views, pos)
