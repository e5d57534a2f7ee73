"""PGL: feature-only item embeddings trained on a sampled principal sub-graph of the UI graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import FeatureTables, xavier_table
from .graph import (
    DegreeSensitivePruning,
    GraphOperator,
    lightgcn_propagate,
    mixed_knn_graph,
    normalized_adjacency,
)
from .losses import bpr_loss, info_nce
from .params import HyperParams, hp

#: InfoNCE temperature (fixed in PGL)
TEMPERATURE = 0.2


@dataclass(frozen=True, kw_only=True)
class PGLParams(HyperParams):
    """PGL's hyper-parameters (config/models/PGL.yaml)."""

    knn_k: int = hp(doc="neighbours per item in each modality's kNN graph", ge=1)
    mm_image_weight: float = hp(doc="weight of the image graph in the mixed item graph", ge=0, le=1)
    n_mm_layers: int = hp(doc="propagations on the item-item graph", ge=0)
    n_ui_layers: int = hp(doc="LightGCN layers on the principal sub-graph", ge=0)
    keep_rate: float = hp(doc="fraction of the user-item edges kept in the local principal sub-graph", gt=0, le=1)
    dropout: float = hp(doc="feature dropout of the InfoNCE views", ge=0, lt=1)
    reg_weight: float = hp(doc="weight of the InfoNCE term (0 skips it)", ge=0)
    mode: str = hp(doc="principal sub-graph: 'local' (the study's; 'global' is not implemented)", choices=("local",))


class PGL(Recommender):
    r"""PGL (Yu et al., "Mind Individual Information! Principal Graph Learning for Multimedia
    Recommendation", AAAI 2025, https://github.com/demonph10/PGL), as in the MMRec toolbox.

    * No item-ID embedding: item :math:`e_i = [\mathrm{norm}(W_v f^v_i + b_v);
      \mathrm{norm}(W_t f^t_i + b_t)]` over TRAINABLE feature tables (initialised from the
      condition's features); user :math:`e_u = [p^v_u; p^t_u]` (two free tables).
    * LightGCN (``n_ui_layers``) on a principal sub-graph for training and on the full normalised
      graph for evaluation; item representation adds :math:`S^{L} e` with the frozen
      :math:`S = \alpha S^v + (1-\alpha) S^t` (unit-weight top-``knn_k`` cosine graphs of the raw
      features, symmetrically normalised, ``mm_image_weight`` = :math:`\alpha`, ``n_mm_layers`` = L).
    * Local principal sub-graph (``mode`` 'local'), redrawn each epoch: ``keep_rate`` of the
      training edges drawn without replacement with probability :math:`\propto 1/\sqrt{d_u d_i}`,
      re-normalised. MMRec hard-codes the kept fraction to 0.3; ``dropout`` is NOT the pruning
      rate but the feature dropout of the InfoNCE views.
    * Loss: BPR + ``reg_weight`` * (InfoNCE(drop(u), drop(u)) + InfoNCE(drop(i+), drop(i+)))/2
      with two independent dropout masks, :math:`\tau = 0.2`; ``reg_weight`` 0 skips the term.
    * ``mode`` 'global' (truncated-SVD principal sub-graph) materialises a dense
      (U+I) x (U+I) matrix in MMRec and is not used by the study; it raises an error here.

    Args (:class:`PGLParams`): ``embedding_size`` (per modality), ``knn_k``, ``mm_image_weight``,
    ``n_mm_layers``, ``n_ui_layers``, ``keep_rate``, ``dropout``, ``reg_weight``, ``mode``.

    Degenerate features: zero or constant features make all cosine similarities tied (zero rows
    have similarity 0, :mod:`.graph`), so the frozen item graph is the hub graph linking every item
    to items ``0..k-1``; every item starts with the same embedding (the projection bias, or 0 for
    zeros, which F.normalize maps to 0 without NaN) and can only separate through the trainable
    feature tables.
    """

    Params = PGLParams
    family = "hybrid"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.user_image, self.user_text = xavier_table(self.n_users, d), xavier_table(self.n_users, d)
        self.content = FeatureTables(features, ("image", "text"), d)
        self.feature_dropout = nn.Dropout(self.hp.dropout)
        self.mm_adj = mixed_knn_graph(features, self.hp.knn_k, self.hp.mm_image_weight)
        train = data.train_matrix.tocoo()
        self.pruning = DegreeSensitivePruning(
            torch.as_tensor(train.row, dtype=torch.long),
            torch.as_tensor(train.col, dtype=torch.long),
            self.n_users,
            self.n_items,
        )
        self.adj = GraphOperator(normalized_adjacency(train.row, train.col, self.n_users, self.n_items))
        self.train_adj: GraphOperator | None = None  # set each epoch; None -> the full graph

    def on_epoch_start(self, epoch: int) -> None:
        """Local principal sub-graph: degree-sensitive sampling of ``keep_rate`` of the edges."""
        self.train_adj = self.pruning.sample(self.hp.keep_rate)

    def item_embeddings(self) -> torch.Tensor:
        image = F.normalize(self.content("image"), dim=1)
        text = F.normalize(self.content("text"), dim=1)
        return torch.cat([image, text], dim=1)

    def propagate(self, adj: GraphOperator) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.item_embeddings()
        h = items
        for _ in range(self.hp.n_mm_layers):
            h = self.mm_adj(h)
        users = torch.cat([self.user_image, self.user_text], dim=1)
        out = lightgcn_propagate(adj, torch.cat([users, items]), self.hp.n_ui_layers)
        return out[: self.n_users], out[self.n_users :] + h

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.adj)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate(self.adj if self.train_adj is None else self.train_adj)
        u, i_pos = user_reps.index_select(0, users), item_reps.index_select(0, pos)
        loss = bpr_loss((u * i_pos).sum(1), (u * item_reps.index_select(0, neg)).sum(1))
        if self.hp.reg_weight != 0:
            drop = self.feature_dropout
            cl = (info_nce(drop(u), drop(u), TEMPERATURE) + info_nce(drop(i_pos), drop(i_pos), TEMPERATURE)) / 2
            loss = loss + self.hp.reg_weight * cl
        return loss
