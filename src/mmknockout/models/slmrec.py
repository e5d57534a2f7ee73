"""SLMRec: self-supervised multimedia recommendation with the FAC (fine-and-coarse) task."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .graph import GraphOperator, lightgcn_propagate, normalized_adjacency
from .losses import info_nce


def raw_info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE on *unnormalised* dot products (row i of view1 matches row i of view2)."""
    logits = view1 @ view2.T / temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels)


def xavier_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)
    return layer


class SLMRec(Recommender):
    r"""SLMRec (Tao, Liu, Xia, Wang, Yang, Huang, Chua; IEEE Transactions on Multimedia 2022,
    code: https://github.com/zltao/SLMRec).

    As configured in the MMRec toolbox (``ssl_task: FAC``, ``mm_fusion_mode: concat``,
    ``adj_type: pre`` = :math:`D^{-1/2} A D^{-1/2}`).

    * Features are row-L2-normalised once (a zero row stays zero) and fixed; per modality
      :math:`f_m = W_m \hat x_m + b_m` (``Linear(feat, d)``).
    * Three LightGCN graphs (``layer_num`` layers, layer mean) share the user ID embedding
      :math:`E_u`: ID :math:`[E_u; E_i]`, image :math:`[E_u; f_v]`, text :math:`[E_u; f_t]`, giving
      :math:`(u^{id}, i^{id}), (u^v, i^v), (u^t, i^t)`.
    * Fusion: :math:`u = W_U [u^{id}; u^v; u^t] + b_U`, :math:`i = W_I [i^{id}; i^v; i^t] + b_I`.
    * Main loss: in-batch InfoNCE between :math:`\bar u` and :math:`\bar i` (L2-normalised) with
      temperature ``temp``; the score is :math:`u^\top i` (the toolbox's sigmoid is monotone and
      omitted).
    * FAC self-supervision on the batch's positive items, plain dot products, temperature
      ``ssl_temp``: :math:`a = g_{i,iv}(i^{id})`, :math:`b = g_{v,iv}(i^v)`,
      :math:`L_v = \mathrm{InfoNCE}(a, b)`; coarse level :math:`c = g_{iva,ivat}(g_{iv,iva}(a))`,
      :math:`e = g_{t,ivat}(i^t)` (both d/2), :math:`L_t = \mathrm{InfoNCE}(c, e)`.
    * Total: :math:`L + \alpha_{ssl}(L_v + L_t)`. ``weight_decay`` (1e-4) is applied by the optimiser.

    Params: ``embedding_size`` (d = ``recdim``, 64), ``layer_num``, ``temp``, ``ssl_temp``,
    ``ssl_alpha``. ``reg`` is accepted and unused, as in the toolbox.

    Degenerate features: zero rows stay zero after normalisation, so :math:`f_m` is the bias for
    every item; constant rows give one identical :math:`f_m` for all items. Either way the modality
    graph carries only degree information; no NaN path exists (``F.normalize`` has an eps).
    """

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.n_layers = int(self.param("layer_num"))
        self.temp = float(self.param("temp"))
        self.ssl_temp = float(self.param("ssl_temp"))
        self.ssl_alpha = float(self.param("ssl_alpha"))
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))
        self.register_buffer("image_feat", F.normalize(features["image"].float(), dim=1))
        self.register_buffer("text_feat", F.normalize(features["text"].float(), dim=1))
        self.image_dense = xavier_linear(self.image_feat.shape[1], d)
        self.text_dense = xavier_linear(self.text_feat.shape[1], d)
        self.item_fusion = xavier_linear(3 * d, d)
        self.user_fusion = xavier_linear(3 * d, d)
        # FAC heads (the toolbox also builds an unused audio head; it is omitted here)
        self.g_i_iv = xavier_linear(d, d)
        self.g_v_iv = xavier_linear(d, d)
        self.g_iv_iva = xavier_linear(d, d)
        self.g_iva_ivat = xavier_linear(d, d // 2)
        self.g_t_ivat = xavier_linear(d, d // 2)
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))

    def branch(self, item_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN on [shared user embeddings; one item input], split into (users, items)."""
        out = lightgcn_propagate(self.adj, torch.cat([self.user_embedding, item_input]), self.n_layers)
        return out[: self.n_users], out[self.n_users:]

    def propagate(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {
            "id": self.branch(self.item_embedding),
            "image": self.branch(self.image_dense(self.image_feat)),
            "text": self.branch(self.text_dense(self.text_feat)),
        }

    def fuse(self, branches: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        order = ("id", "image", "text")
        users = self.user_fusion(torch.cat([branches[k][0] for k in order], dim=1))
        items = self.item_fusion(torch.cat([branches[k][1] for k in order], dim=1))
        return users, items

    def fac_loss(self, branches: dict[str, tuple[torch.Tensor, torch.Tensor]], items: torch.Tensor) -> torch.Tensor:
        """Fine (ID vs image) then coarse (ID+image space vs text) item-level InfoNCE."""
        x_id = self.g_i_iv(branches["id"][1][items])
        x_v = self.g_v_iv(branches["image"][1][items])
        fine = raw_info_nce(x_id, x_v, self.ssl_temp)
        x_ivt = self.g_iva_ivat(self.g_iv_iva(x_id))
        x_t = self.g_t_ivat(branches["text"][1][items])
        coarse = raw_info_nce(x_ivt, x_t, self.ssl_temp)
        return fine + coarse

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        branches = self.propagate()
        user_reps, item_reps = self.fuse(branches)
        main = info_nce(user_reps[users], item_reps[pos], self.temp)
        return main + self.ssl_alpha * self.fac_loss(branches, pos)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fuse(self.propagate())
