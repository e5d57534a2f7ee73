"""FREEDOM: a frozen item-item graph plus a degree-sensitively pruned user-item graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.dataset import SplitData
from .base import Features, Recommender, unique_items
from .blocks import FeatureTables, id_tables
from .graph import (
    DegreeSensitivePruning,
    GraphOperator,
    lightgcn_propagate,
    mixed_knn_graph,
    normalized_adjacency,
)
from .losses import bpr_loss
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class FREEDOMParams(HyperParams):
    """FREEDOM's hyper-parameters (config/models/FREEDOM.yaml)."""

    knn_k: int = hp(doc="neighbours per item in each modality's kNN graph", ge=1)
    mm_image_weight: float = hp(doc="weight of the image graph in the mixed item graph", ge=0, le=1)
    n_mm_layers: int = hp(doc="propagations on the item-item graph", ge=0)
    n_ui_layers: int = hp(doc="LightGCN layers on the user-item graph", ge=0)
    dropout: float = hp(doc="fraction of the user-item edges pruned each epoch", ge=0, lt=1)
    reg_weight: float = hp(doc="weight of the feature BPR terms", ge=0)


class FREEDOM(Recommender):
    r"""FREEDOM (Zhou & Shen, ACM MM 2023, https://arxiv.org/abs/2211.06924), as in MMRec.

    * Frozen item-item graph :math:`S = \alpha S^v + (1-\alpha) S^t` with :math:`\alpha` =
      ``mm_image_weight`` (0.1); each :math:`S^m` is the symmetrically normalised *unweighted*
      top-``knn_k`` cosine graph of the raw features (indices only), built once.
    * Item-ID embeddings propagated ``n_mm_layers`` times on :math:`S`: :math:`h = S^{L} e^{id}`.
    * LightGCN (``n_ui_layers``) on the user-item graph; item representation = LightGCN item
      embedding + :math:`h`.
    * Training uses a user-item graph pruned each epoch: a fraction ``1 - dropout`` of the edges is
      drawn without replacement with probability proportional to
      :math:`1/\sqrt{d_u d_i}` (degree-sensitive pruning), then re-normalised. Evaluation uses the
      full graph.
    * Loss: BPR on the representations plus ``reg_weight`` times BPR of the user representation
      against the projected features :math:`W_m f_i + b_m` of the positive/negative items, for text
      and image; the feature tables are trainable (initialised from the condition's features).

    One slot (or the ``absent`` condition): :math:`S` is the present modality's kNN graph alone and
    the feature loss has that modality's term only (as MMRec with ``v_feat`` or ``t_feat`` None).

    Knockout: constant or all-zero features make every cosine similarity tied (zero rows have
    similarity 0, see :mod:`.graph`), so ties break to the lowest item indices and every item links
    to items ``0..k-1``; the feature loss is then invariant to the constant. No NaN can arise.

    Args (:class:`FREEDOMParams`): ``embedding_size``, ``knn_k``, ``mm_image_weight``,
    ``n_mm_layers``, ``n_ui_layers``, ``dropout``, ``reg_weight``.
    """

    Params = FREEDOMParams
    family = "item-item graph"
    optional_modalities = ("text", "image")

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, self.embedding_size)
        self.content = FeatureTables(
            features, self.present_modalities, self.embedding_size, xavier=True, zero_bias=True
        )
        self.mm_adj = mixed_knn_graph(features, self.hp.knn_k, self.hp.mm_image_weight)
        self.pruning = DegreeSensitivePruning(
            torch.as_tensor(data.train_users, dtype=torch.long),
            torch.as_tensor(data.train_items, dtype=torch.long),
            self.n_users,
            self.n_items,
        )
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        self.train_adj = self.adj

    def on_epoch_start(self, epoch: int) -> None:
        """Degree-sensitive edge pruning: keep ``1 - dropout`` of the user-item edges."""
        self.train_adj = self.adj if self.hp.dropout <= 0 else self.pruning.sample(1 - self.hp.dropout)

    def propagate(self, adj: GraphOperator) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.item_embedding
        for _ in range(self.hp.n_mm_layers):
            h = self.mm_adj(h)
        out = lightgcn_propagate(adj, torch.cat([self.user_embedding, self.item_embedding]), self.hp.n_ui_layers)
        return out[: self.n_users], out[self.n_users :] + h

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate(self.train_adj)
        u = user_reps.index_select(0, users)
        loss = bpr_loss((u * item_reps.index_select(0, pos)).sum(1), (u * item_reps.index_select(0, neg)).sum(1))
        items, pos_at, neg_at = unique_items(pos, neg)
        for m in self.present_modalities:
            projected = self.content(m, items)
            loss = loss + self.hp.reg_weight * bpr_loss(
                (u * projected.index_select(0, pos_at)).sum(1), (u * projected.index_select(0, neg_at)).sum(1)
            )
        return loss

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.adj)
