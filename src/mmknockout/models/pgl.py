"""PGL: feature-only item embeddings trained on a sampled principal sub-graph of the UI graph."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from ..errors import InputError
from .base import Features, Recommender
from .graph import GraphOperator, knn_graph, lightgcn_propagate, normalized_adjacency
from .losses import bpr_loss, info_nce

#: InfoNCE temperature (fixed in PGL)
TEMPERATURE = 0.2


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

    Params: ``embedding_size`` (per modality), ``knn_k``, ``mm_image_weight``, ``n_mm_layers``,
    ``n_ui_layers``, ``keep_rate``, ``dropout``, ``reg_weight``, ``mode``.

    Degenerate features: zero or constant features make all cosine similarities tied (zero rows
    have similarity 0, :mod:`.graph`), so the frozen item graph is the hub graph linking every item
    to items ``0..k-1``; every item starts with the same embedding (the projection bias, or 0 for
    zeros, which F.normalize maps to 0 without NaN) and can only separate through the trainable
    feature tables.
    """

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        mode = self.param("mode")
        if mode != "local":
            raise InputError(f"PGL: only mode 'local' is implemented (the study's setting), got {mode!r}")
        self.n_mm_layers = int(self.param("n_mm_layers"))
        self.n_ui_layers = int(self.param("n_ui_layers"))
        self.keep_rate = float(self.param("keep_rate"))
        self.reg_weight = float(self.param("reg_weight"))
        k, alpha = int(self.param("knn_k")), float(self.param("mm_image_weight"))

        self.user_image = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.user_text = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.image_features = nn.Parameter(features["image"].clone().float())
        self.text_features = nn.Parameter(features["text"].clone().float())
        self.image_proj = nn.Linear(features["image"].shape[1], d)
        self.text_proj = nn.Linear(features["text"].shape[1], d)
        self.feature_dropout = nn.Dropout(float(self.param("dropout")))

        mm_adj = alpha * knn_graph(features["image"], k, weighted=False) + (1 - alpha) * knn_graph(features["text"], k, weighted=False)
        self.mm_adj = GraphOperator(mm_adj.coalesce())
        train = data.train_matrix.tocoo()
        self.register_buffer("edge_users", torch.as_tensor(train.row, dtype=torch.long))
        self.register_buffer("edge_items", torch.as_tensor(train.col, dtype=torch.long))
        self.adj = GraphOperator(normalized_adjacency(train.row, train.col, self.n_users, self.n_items))
        deg_u = torch.bincount(self.edge_users, minlength=self.n_users).float()
        deg_i = torch.bincount(self.edge_items, minlength=self.n_items).float()
        self.register_buffer("edge_prob", (deg_u[self.edge_users] * deg_i[self.edge_items]).rsqrt())
        self.train_adj: GraphOperator | None = None  # set each epoch; None -> the full graph

    def on_epoch_start(self, epoch: int) -> None:
        """Local principal sub-graph: degree-sensitive sampling of ``keep_rate`` of the edges."""
        n_keep = int(self.edge_prob.numel() * self.keep_rate)
        keep = torch.multinomial(self.edge_prob, n_keep, replacement=False)
        self.train_adj = GraphOperator(normalized_adjacency(self.edge_users[keep], self.edge_items[keep], self.n_users, self.n_items)).to(self.edge_users.device)

    def item_embeddings(self) -> torch.Tensor:
        image = F.normalize(self.image_proj(self.image_features), dim=1)
        text = F.normalize(self.text_proj(self.text_features), dim=1)
        return torch.cat([image, text], dim=1)

    def propagate(self, adj: GraphOperator) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.item_embeddings()
        h = items
        for _ in range(self.n_mm_layers):
            h = self.mm_adj(h)
        users = torch.cat([self.user_image, self.user_text], dim=1)
        out = lightgcn_propagate(adj, torch.cat([users, items]), self.n_ui_layers)
        return out[: self.n_users], out[self.n_users:] + h

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.adj)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate(self.adj if self.train_adj is None else self.train_adj)
        u, i_pos = user_reps.index_select(0, users), item_reps.index_select(0, pos)
        loss = bpr_loss((u * i_pos).sum(1), (u * item_reps.index_select(0, neg)).sum(1))
        if self.reg_weight != 0:
            drop = self.feature_dropout
            cl = (info_nce(drop(u), drop(u), TEMPERATURE) + info_nce(drop(i_pos), drop(i_pos), TEMPERATURE)) / 2
            loss = loss + self.reg_weight * cl
        return loss
