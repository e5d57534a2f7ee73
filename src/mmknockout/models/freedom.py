"""FREEDOM: a frozen item-item graph plus a degree-sensitively pruned user-item graph."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender, unique_items
from .graph import GraphOperator, knn_graph, lightgcn_propagate, normalized_adjacency
from .losses import bpr_loss


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

    Knockout: constant or all-zero features make every cosine similarity tied (zero rows have
    similarity 0, see :mod:`.graph`), so ties break to the lowest item indices and every item links
    to items ``0..k-1``; the feature loss is then invariant to the constant. No NaN can arise.

    Params: ``embedding_size``, ``knn_k``, ``mm_image_weight``, ``n_mm_layers``, ``n_ui_layers``,
    ``dropout``, ``reg_weight``.
    """

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.n_mm_layers = int(self.param("n_mm_layers"))
        self.n_ui_layers = int(self.param("n_ui_layers"))
        self.dropout = float(self.param("dropout"))
        self.reg_weight = float(self.param("reg_weight"))
        k, alpha = int(self.param("knn_k")), float(self.param("mm_image_weight"))

        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))
        self.text_features = nn.Parameter(features["text"].clone().float())
        self.image_features = nn.Parameter(features["image"].clone().float())
        self.text_proj = nn.Linear(features["text"].shape[1], d)
        self.image_proj = nn.Linear(features["image"].shape[1], d)
        for layer in (self.text_proj, self.image_proj):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

        mm_adj = alpha * knn_graph(features["image"], k, weighted=False) + (1 - alpha) * knn_graph(features["text"], k, weighted=False)
        self.mm_adj = GraphOperator(mm_adj.coalesce())
        self.register_buffer("edge_users", torch.as_tensor(data.train_users, dtype=torch.long))
        self.register_buffer("edge_items", torch.as_tensor(data.train_items, dtype=torch.long))
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        deg_u = torch.bincount(self.edge_users, minlength=self.n_users).float()
        deg_i = torch.bincount(self.edge_items, minlength=self.n_items).float()
        self.register_buffer("edge_prob", (deg_u[self.edge_users] * deg_i[self.edge_items]).rsqrt())
        self.train_adj = self.adj

    def on_epoch_start(self, epoch: int) -> None:
        """Degree-sensitive edge pruning: keep ``1 - dropout`` of the user-item edges."""
        if self.dropout <= 0:
            self.train_adj = self.adj
            return
        n_keep = int(self.edge_prob.numel() * (1 - self.dropout))
        keep = torch.multinomial(self.edge_prob, n_keep, replacement=False)
        self.train_adj = GraphOperator(normalized_adjacency(self.edge_users[keep], self.edge_items[keep], self.n_users, self.n_items)).to(self.edge_users.device)

    def propagate(self, adj: GraphOperator) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.item_embedding
        for _ in range(self.n_mm_layers):
            h = self.mm_adj(h)
        out = lightgcn_propagate(adj, torch.cat([self.user_embedding, self.item_embedding]), self.n_ui_layers)
        return out[: self.n_users], out[self.n_users:] + h

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate(self.train_adj)
        u = user_reps.index_select(0, users)
        loss = bpr_loss((u * item_reps.index_select(0, pos)).sum(1), (u * item_reps.index_select(0, neg)).sum(1))
        items, pos_at, neg_at = unique_items(pos, neg)
        for table, proj in ((self.text_features, self.text_proj), (self.image_features, self.image_proj)):
            projected = proj(table.index_select(0, items))
            loss = loss + self.reg_weight * bpr_loss((u * projected.index_select(0, pos_at)).sum(1), (u * projected.index_select(0, neg_at)).sum(1))
        return loss

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.adj)
