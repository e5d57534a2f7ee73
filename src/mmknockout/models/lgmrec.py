"""LGMRec: local (modal graph) and global (hypergraph) embeddings on top of LightGCN."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import id_tables, xavier_table
from .graph import (
    GraphOperator,
    lightgcn_propagate,
    normalized_adjacency,
    sparse_from_edges,
)
from .losses import bpr_loss, emb_norm_loss
from .ops import BoundedLogSumExp, FixedProjection
from .params import HyperParams, hp

GUMBEL_TAU = 0.2  # Gumbel-softmax and contrastive temperature, hard-coded in the toolbox


@dataclass(frozen=True, kw_only=True)
class LGMRecParams(HyperParams):
    """LGMRec's hyper-parameters (config/models/LGMRec.yaml)."""

    feat_embed_dim: int = hp(64, "width of the local modal embeddings", ge=1)
    cf_model: str = hp("lightgcn", "collaborative backbone (only 'lightgcn' is implemented)", choices=("lightgcn",))
    n_ui_layers: int = hp(doc="LightGCN layers of the CF embeddings", ge=0)
    n_mm_layers: int = hp(doc="propagations of the local modal embeddings", ge=0)
    n_hyper_layer: int = hp(doc="hypergraph message-passing rounds", ge=1)
    hyper_num: int = hp(doc="number of hyperedges", ge=1)
    keep_rate: float = hp(doc="keep probability of the hyperedge-assignment dropout", gt=0, le=1)
    alpha: float = hp(doc="weight of the global (hypergraph) embeddings", ge=0)
    cl_weight: float = hp(doc="weight of the hypergraph InfoNCE", ge=0)
    reg_weight: float = hp(doc="weight of EmbLoss on the batch's final embeddings", ge=0)


def hyper_contrastive(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    tau: float,
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Summed InfoNCE of cosine similarities: anchor row b vs its positive, against all candidates.

    ``factors = (H, L)`` with ``candidates == H @ L`` (hyperedge assignments, hyperedge
    embeddings): with fewer hyperedges than embedding dimensions, the logits are computed as
    ``(a L^T) (H / ||H L||)^T``, the same values through a thinner product.
    """
    a, p = F.normalize(anchor, dim=1), F.normalize(positive, dim=1)
    pos = (a * p).sum(dim=1) / tau
    if factors is not None and factors[1].shape[0] < factors[1].shape[1]:
        assign, edge = factors
        norm = candidates.norm(dim=1, keepdim=True).clamp_min(1e-12)  # as F.normalize
        left, right = (a @ edge.T) / tau, assign / norm
    else:
        left, right = a / tau, F.normalize(candidates, dim=1)
    return (BoundedLogSumExp.apply(left, right) - pos).sum()


class Hyper(NamedTuple):
    """Hypergraph output of one modality: ``z_user = user_h @ edge``, ``z_item = item_h @ edge``
    with the (dropped-out) assignments and the last layer's hyperedge embeddings."""

    z_user: torch.Tensor
    z_item: torch.Tensor
    user_h: torch.Tensor
    item_h: torch.Tensor
    edge: torch.Tensor


class LGMRec(Recommender):
    r"""LGMRec (Guo, Li, Li, Wang, Qiao, Wei; AAAI 2024, https://arxiv.org/abs/2312.16400).

    With :math:`\tilde A` the normalised user-item graph, :math:`R` the binary user x item matrix
    and frozen features :math:`X_m` (m = v, t):

    * CF: :math:`E^{cf} = \mathrm{LightGCN}(\tilde A, [E_u; E_i])` with ``n_ui_layers`` (layer mean).
    * Local modal graph: :math:`F_i = X_m W_m` (no bias), :math:`F_u = \mathrm{diag}(R1)^{-1} R F_i`
      (mean of the user's items), :math:`E^m = \tilde A^{L_m} [F_u; F_i]` (``n_mm_layers``, last
      layer only).
    * Hyperedges: :math:`H_i = \mathrm{GS}_\tau(X_m V_m)`, :math:`H_u = \mathrm{GS}_\tau(R X_m V_m)`
      (Gumbel-softmax over ``hyper_num`` hyperedges, :math:`\tau` = 0.2, soft); in training the
      assignments pass through dropout with keep probability ``keep_rate``. ``n_hyper_layer``
      rounds of :math:`\Lambda = H_i^\top Z_i`, :math:`Z_i \leftarrow H_i \Lambda`,
      :math:`Z_u = H_u \Lambda`, starting from :math:`Z_i = E^{cf}_i`, give :math:`Z^m`.
    * :math:`E = E^{cf} + \bar E^v + \bar E^t + \alpha\, \overline{Z^v + Z^t}` (bar = row L2 norm).
    * Loss: BPR on :math:`E` + ``cl_weight`` :math:`\cdot` [InfoNCE(:math:`Z^v_u, Z^t_u`; all users)
      + InfoNCE(:math:`Z^v_i, Z^t_i`; all items)] (cosine, :math:`\tau` = 0.2, summed over the
      batch) + ``reg_weight`` :math:`\cdot` EmbLoss of the batch's final user/pos/neg embeddings
      (as in both the authors' code and MMRec; not the ego embeddings).

    Evaluation (``representations``) follows MMRec, whose ``full_sort_predict`` runs the same
    forward pass in eval mode: the hyperedge dropout is off, but the Gumbel noise is still
    sampled (from the torch global RNG), so scores are stochastic. One sample is drawn per
    evaluation pass (MMRec draws one per batch of evaluated users).

    Args (:class:`LGMRecParams`): ``embedding_size`` (64), ``feat_embed_dim`` (64), ``n_ui_layers``, ``n_mm_layers``,
    ``n_hyper_layer`` (>= 1), ``hyper_num``, ``keep_rate``, ``alpha``, ``cl_weight``,
    ``reg_weight``; ``cf_model`` must be ``lightgcn``.

    Degenerate features: all-zero features make :math:`F` and :math:`E^m` zero (``F.normalize``
    maps a zero row to zero) and the hyperedge logits zero, so assignments are pure Gumbel noise;
    constant features give the same :math:`F_i` for every item and the same logits for every
    item. Users without training items get zero modal features (zero degree -> zero weight).
    No NaN path.
    """

    Params = LGMRecParams
    family = "hybrid"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        d_feat = self.hp.feat_embed_dim
        hyper_num = self.hp.hyper_num
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        self.modal_names = ("image", "text")
        for m in self.modal_names:
            self.register_buffer(f"{m}_feat", features[m].float().clone())  # frozen
        self.local_trs = nn.ParameterDict({m: xavier_table(features[m].shape[1], d_feat) for m in self.modal_names})
        self.hyper_trs = nn.ParameterDict({m: xavier_table(features[m].shape[1], hyper_num) for m in self.modal_names})
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        ui = self.user_item_matrix(data)
        self.ui = GraphOperator(ui)
        deg = torch.sparse.sum(ui, dim=1).to_dense()
        self.register_buffer(
            "inv_user_degree", torch.where(deg > 0, 1.0 / deg.clamp_min(1.0), torch.zeros_like(deg)).unsqueeze(1)
        )

    def user_item_matrix(self, data: SplitData) -> torch.Tensor:
        """Binary n_users x n_items training matrix (duplicates merged)."""
        m = data.train_matrix.tocoo()
        rows, cols = torch.as_tensor(m.row, dtype=torch.long), torch.as_tensor(m.col, dtype=torch.long)
        return sparse_from_edges(rows, cols, torch.ones(rows.numel()), (self.n_users, self.n_items))

    def feat(self, m: str) -> torch.Tensor:
        return getattr(self, f"{m}_feat")

    def collaborative(self) -> torch.Tensor:
        return lightgcn_propagate(self.adj, torch.cat([self.user_embedding, self.item_embedding]), self.hp.n_ui_layers)

    def project(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X_m W_m, X_m V_m)`` from one product with ``[W_m | V_m]``: one pass over the features,
        and one ``X^T G`` for both weight gradients (a 4-column ``X^T G`` alone is very slow)."""
        d_feat = self.local_trs[m].shape[1]
        out = FixedProjection.apply(self.feat(m), torch.cat([self.local_trs[m], self.hyper_trs[m]], dim=1))
        return out[:, :d_feat], out[:, d_feat:]

    def local_modal(self, item_f: torch.Tensor) -> torch.Tensor:
        """Modal graph embedding: projected item features, user means, n_mm_layers propagations."""
        user_f = self.ui(item_f) * self.inv_user_degree
        out = torch.cat([user_f, item_f])
        for _ in range(self.hp.n_mm_layers):
            out = self.adj(out)
        return out

    def hyperedges(self, item_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft Gumbel-softmax hyperedge assignments of items and users (torch global RNG)."""
        user_logits = self.ui(item_logits)
        return (
            F.gumbel_softmax(item_logits, tau=GUMBEL_TAU, hard=False, dim=1),
            F.gumbel_softmax(user_logits, tau=GUMBEL_TAU, hard=False, dim=1),
        )

    def hypergraph(self, item_h: torch.Tensor, user_h: torch.Tensor, item_emb: torch.Tensor) -> Hyper:
        """Hypergraph message passing item -> hyperedge -> (item, user); dropout on assignments."""
        p = 1.0 - self.hp.keep_rate
        item_h = F.dropout(item_h, p=p, training=self.training)
        user_h = F.dropout(user_h, p=p, training=self.training)
        z_item = item_emb
        for _ in range(self.hp.n_hyper_layer):
            edge = item_h.T @ z_item
            z_item = item_h @ edge
        return Hyper(user_h @ edge, z_item, user_h, item_h, edge)

    def branches(self) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, Hyper]]:
        """CF embeddings, local modal embeddings (one per modality) and hypergraph outputs, all
        rows (users, then items); Gumbel noise and dropout drawn in the toolbox's order."""
        proj = {m: self.project(m) for m in self.modal_names}
        assignments = {m: self.hyperedges(proj[m][1]) for m in self.modal_names}  # image first, as the toolbox
        cf = self.collaborative()
        local = [self.local_modal(proj[m][0]) for m in self.modal_names]
        hyper = {m: self.hypergraph(*assignments[m], cf[self.n_users :]) for m in self.modal_names}
        return cf, local, hyper

    def combine(self, cf: torch.Tensor, local: list[torch.Tensor], glob: torch.Tensor) -> torch.Tensor:
        """Final embeddings of the given rows: ``E^cf + sum_m bar E^m + alpha * bar(sum_m Z^m)``."""
        return cf + sum(F.normalize(x, dim=1) for x in local) + self.hp.alpha * F.normalize(glob, dim=1)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Hyper]]:
        cf, local, hyper = self.branches()
        glob = sum(torch.cat([h.z_user, h.z_item]) for h in hyper.values())
        all_embs = self.combine(cf, local, glob)
        return all_embs[: self.n_users], all_embs[self.n_users :], hyper

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        cf, local, hyper = self.branches()
        items = torch.cat([pos, neg])
        nodes = torch.cat([users, items + self.n_users])  # the final embeddings are row-wise: only these rows
        glob = sum(torch.cat([h.z_user[users], h.z_item[items]]) for h in hyper.values())
        u, i, j = self.combine(cf[nodes], [x[nodes] for x in local], glob).split([len(users), len(pos), len(neg)])
        v, t = hyper["image"], hyper["text"]
        hcl = hyper_contrastive(
            v.z_user[users], t.z_user[users], t.z_user, GUMBEL_TAU, (t.user_h, t.edge)
        ) + hyper_contrastive(v.z_item[pos], t.z_item[pos], t.z_item, GUMBEL_TAU, (t.item_h, t.edge))
        return (
            bpr_loss((u * i).sum(1), (u * j).sum(1))
            + self.hp.cl_weight * hcl
            + self.hp.reg_weight * emb_norm_loss(u, i, j)
        )

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_e, item_e, _ = self.propagate()
        return user_e, item_e
