"""MGCN: behaviour-purified modality views on item-item graphs, fused by attention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.dataset import SplitData
from .base import Features
from .blocks import FeatureTables, SideContentRecommender, gate, id_tables, take_rows
from .graph import (
    GraphOperator,
    bipartite_blocks,
    knn_graph,
    lightgcn_propagate,
    normalized_adjacency,
)
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class MGCNParams(HyperParams):
    """MGCN's hyper-parameters (config/models/MGCN.yaml)."""

    knn_k: int = hp(doc="neighbours per item in each modality's kNN graph", ge=1)
    n_layers: int = hp(doc="propagations on the item-item graphs", ge=0)
    n_ui_layers: int = hp(doc="LightGCN layers of the content view", ge=0)
    reg_weight: float = hp(doc="weight of the L2 penalty on the batch embeddings", ge=0)
    cl_loss: float = hp(doc="weight of the side/content InfoNCE", ge=0)


class MGCN(SideContentRecommender):
    r"""MGCN (Yu et al., ACM MM 2023, https://arxiv.org/abs/2308.03588), as in MMRec.

    * Fixed item-item graphs :math:`S^m` (m = image, text): top-``knn_k`` cosine kNN of the raw
      features, similarities as edge weights, symmetric normalisation (sparse, built once from the
      features this run got).
    * Behaviour-guided purifier: :math:`\dot e^m_i = e^{id}_i \odot \sigma(W^g_m (W_m f^m_i + b_m)
      + b^g_m)` on the *trainable* feature tables.
    * Item-item view per modality: :math:`\bar e^m_I = (S^m)^{L} \dot e^m` (``n_layers``), users
      :math:`\bar e^m_U = \hat R \bar e^m_I` with :math:`\hat R = D_u^{-1/2} R D_i^{-1/2}` the
      user-item block of the normalised UI graph (MMRec's ``self.R``).
    * Behaviour-aware fuser: :math:`\alpha = \mathrm{softmax}([q(\bar e^v), q(\bar e^t)])` with
      :math:`q(x) = w^\top \tanh(W x + b)`; common :math:`e^c = \alpha_v \bar e^v + \alpha_t \bar e^t`;
      specific :math:`\tilde e^m = \sigma(W^p_m e^{ui} + b^p_m) \odot (\bar e^m - e^c)`;
      side :math:`e^s = (\tilde e^v + \tilde e^t + e^c)/3`.
    * Content view :math:`e^{ui}`: LightGCN (``n_ui_layers``, layer mean) on
      :math:`D^{-1/2} A D^{-1/2}`. Final :math:`e = e^{ui} + e^s`, scores are dot products.
    * Loss: BPR + ``reg_weight`` * (1/2)(||u||^2+||i||^2+||j||^2)/batch on the final embeddings +
      ``cl_loss`` * [InfoNCE(:math:`e^s_{pos}, e^{ui}_{pos}`) + InfoNCE(:math:`e^s_u, e^{ui}_u`)],
      temperature 0.2 (hard-coded in MMRec).

    Degenerate features (defined here; MMRec divides 0 by 0, so all-zero features give NaN and
    metrics of 0.0000): an all-zero row has cosine 0 with every item, so all-zero features give
    an all-zero item-item graph (zero degrees map to zero weights); the item-item views are then
    zero, the side embedding is zero and the model reduces to LightGCN plus an InfoNCE term on a
    zero vector (finite: normalisation has an eps). Constant rows tie every similarity and ties go
    to the lower item index (every item links to items ``0..k-1``).

    Args (:class:`MGCNParams`): ``embedding_size``, ``knn_k``, ``n_layers``, ``n_ui_layers``,
    ``reg_weight``, ``cl_loss``.
    """

    Params = MGCNParams
    family = "item-item graph"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        self.content = FeatureTables(features, ("image", "text"), d)
        self.query_common = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        self.gate_image, self.gate_text = gate(d), gate(d)
        self.gate_image_prefer, self.gate_text_prefer = gate(d), gate(d)

        self.image_adj = GraphOperator(knn_graph(features["image"], self.hp.knn_k, weighted=True))
        self.text_adj = GraphOperator(knn_graph(features["text"], self.hp.knn_k, weighted=True))
        adj = normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items)
        self.adj = GraphOperator(adj)
        self.R = GraphOperator(bipartite_blocks(adj, self.n_users)[0])

    def fuse(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Common + preference-gated specific parts, averaged: the side embedding."""
        att = torch.softmax(
            torch.cat([self.query_common(image_embeds), self.query_common(text_embeds)], dim=-1), dim=-1
        )
        common = att[:, :1] * image_embeds + att[:, 1:] * text_embeds
        spec_image = self.gate_image_prefer(content) * (image_embeds - common)
        spec_text = self.gate_text_prefer(content) * (text_embeds - common)
        return (spec_image + spec_text + common) / 3

    def propagate(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(side, content) embeddings of the nodes ``rows`` (users then items; all when None)."""
        image_items = self.item_embedding * self.gate_image(self.content("image"))
        text_items = self.item_embedding * self.gate_text(self.content("text"))
        content = lightgcn_propagate(
            self.adj, torch.cat([self.user_embedding, self.item_embedding]), self.hp.n_ui_layers
        )
        image_view = self.item_item_view(image_items, self.image_adj)
        text_view = self.item_item_view(text_items, self.text_adj)
        image_view, text_view, content = take_rows(rows, image_view, text_view, content)
        return self.fuse(image_view, text_view, content), content
