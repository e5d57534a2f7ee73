"""LATTICE: item-item structures learned from multimodal features, mixed with fixed kNN graphs."""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import FeatureTables, id_tables
from .graph import (
    GraphOperator,
    bipartite_adjacency,
    cosine_normalize,
    knn_graph,
    knn_indices,
    lightgcn_propagate,
    sparse_from_edges,
)
from .losses import bpr_loss, l2_sq_loss
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class LATTICEParams(HyperParams):
    """LATTICE's hyper-parameters (config/models/LATTICE.yaml)."""

    feat_embed_dim: int = hp(doc="width of the projected features of the learned graphs", ge=1)
    weight_size: tuple[int, ...] = hp(doc="one entry per user-item layer (only the count is used)", ge=1)
    knn_k: int = hp(doc="neighbours per item in the original and learned graphs", ge=1)
    lambda_coeff: float = hp(doc="weight of the original graphs in the item-item mixture", ge=0, le=1)
    n_layers: int = hp(doc="propagations on the item-item graph", ge=0)
    reg_weight: float = hp(doc="weight of the L2 penalty on the batch representations", ge=0)


def mean_adjacency_with_self_loops(users, items, n_users: int, n_items: int) -> torch.Tensor:
    """Row-normalised :math:`D^{-1}(A + I)` of the bipartite user-item graph (LATTICE's UI graph).

    Private helper (not in :mod:`.graph`): MMRec's LATTICE propagates on this random-walk matrix,
    not on LightGCN's symmetric :math:`D^{-1/2} A D^{-1/2}`.
    """
    n = n_users + n_items
    adj = bipartite_adjacency(users, items, n_users, n_items)
    diag = torch.arange(n)
    rows = torch.cat([adj.indices()[0], diag])
    cols = torch.cat([adj.indices()[1], diag])
    vals = torch.cat([adj.values(), torch.ones(n)])
    deg = torch.zeros(n).index_add_(0, rows, vals)
    return sparse_from_edges(rows, cols, vals / deg[rows], (n, n))


class LATTICE(Recommender):
    r"""LATTICE (Zhang et al., ACM MM 2021, https://arxiv.org/abs/2104.09036), as in MMRec.

    * Original graphs :math:`\tilde S^m` (m = image, text): top-``knn_k`` cosine kNN of the *raw*
      features with the similarities kept as edge weights, symmetrically normalised
      (:func:`.graph.knn_graph`, ``weighted=True``), built once from the features this run got.
    * Learned graphs: :math:`\hat f^m = W_m f^m + b_m` (``feat_embed_dim``) on the *trainable*
      feature tables; :math:`\hat S^m` = top-``knn_k`` cosine kNN of :math:`\hat f^m` with the
      similarities as weights; mixed :math:`\hat S = D^{-1/2}(\sum_m w_m \hat S^m) D^{-1/2}` with
      :math:`w = \mathrm{softmax}(\text{modal\_weight})`, ``modal_weight`` initialised to (0.5, 0.5)
      (index 0 = image, 1 = text).
    * One slot (or the ``absent`` condition), as MMRec with ``v_feat`` or ``t_feat`` None: only the
      present modality's table, projection and graphs exist, with weight 1 (no ``modal_weight``):
      :math:`\hat S = D^{-1/2}\hat S^m D^{-1/2}` and :math:`\tilde S^m` alone.
    * :math:`S = (1-\lambda)\hat S + \lambda \sum_m w_m \tilde S^m` with :math:`\lambda` =
      ``lambda_coeff``; item-ID embeddings propagated ``n_layers`` times: :math:`h = S^L e^{id}`.
    * UI branch: LightGCN-style layer mean over ``len(weight_size)`` layers on MMRec's LATTICE
      UI matrix :math:`D^{-1}(A+I)` (row-normalised, with self-loops).
      Item representation = UI item embedding + :math:`h / \lVert h \rVert_2`.
    * Loss: BPR + ``reg_weight`` * (1/2)(||u||^2 + ||i||^2 + ||j||^2) / batch on the final
      representations.

    Schedule of the learned graph (as in MMRec): it is rebuilt, with gradients flowing into the
    projections, the feature tables and ``modal_weight``, at the first training batch of every
    epoch and then reused *detached* for the rest of that epoch; it is rebuilt again for every
    evaluation from the current parameters (nothing from training is reused). The kNN indices
    are chosen without gradient (stable sort, chunked, never a dense n x n matrix); the edge
    weights are recomputed with gradient, which gives the same gradient as differentiating
    ``topk`` values.

    Degenerate features (defined here, unlike MMRec, which divides 0 by 0, so all-zero features
    give NaN and metrics of 0.0000): an all-zero row has cosine 0 with every item, so all-zero
    features give an all-zero original graph (zero degrees map to zero weights) and only the
    learned graph carries item-item signal; its projected features equal the bias, i.e. constant
    rows. Constant rows tie every similarity; ties go to the lower item index, so every item
    links to items ``0..k-1``. A non-positive degree of the learned graph gives zero weights.

    Args (:class:`LATTICEParams`): ``embedding_size``, ``feat_embed_dim``, ``weight_size``,
    ``knn_k``, ``lambda_coeff``, ``n_layers``, ``reg_weight``.
    """

    Params = LATTICEParams
    family = "item-item graph"
    optional_modalities = ("text", "image")

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.n_ui_layers = len(self.hp.weight_size)
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        #: the present modalities, image first (the order of ``modal_weight``)
        self.graph_modalities = tuple(m for m in ("image", "text") if m in self.present_modalities)
        self.content = FeatureTables(features, self.graph_modalities, self.hp.feat_embed_dim)
        if len(self.graph_modalities) == 2:
            self.modal_weight = nn.Parameter(torch.tensor([0.5, 0.5]))
        self.original_adj = nn.ModuleDict(
            {m: GraphOperator(knn_graph(features[m], self.hp.knn_k, weighted=True)) for m in self.graph_modalities}
        )
        self.adj = GraphOperator(
            mean_adjacency_with_self_loops(data.train_users, data.train_items, self.n_users, self.n_items)
        )
        self._rebuild = True
        self._learned: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_epoch_start(self, epoch: int) -> None:
        """Mark the learned graph for rebuilding at the epoch's first batch."""
        self._rebuild = True

    def modal_mix(self) -> dict[str, torch.Tensor | float]:
        """Weight of each present modality's graphs: ``softmax(modal_weight)`` with two, 1 with one."""
        if len(self.graph_modalities) == 1:
            return {self.graph_modalities[0]: 1.0}
        w = torch.softmax(self.modal_weight, dim=0)
        return {"image": w[0], "text": w[1]}

    def learned_graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The normalised learned graph as (neighbour ids [n, 2k], weights [n, 2k]).

        Columns 0..k-1 are the image neighbours (weight :math:`w_0 s`), k..2k-1 the text ones
        (weight :math:`w_1 s`); a pair present in both simply appears twice (the weights add up).
        With one modality there are k columns, weight :math:`s`.
        """
        ids, vals = [], []
        for m, weight in self.modal_mix().items():
            z = self.content(m)
            with torch.no_grad():
                idx, _ = knn_indices(z, self.hp.knn_k)
            zn = cosine_normalize(z)
            ids.append(idx)
            vals.append(weight * (zn.unsqueeze(1) * zn[idx]).sum(-1))
        idx, val = torch.cat(ids, dim=1), torch.cat(vals, dim=1)
        deg = val.sum(1)
        inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-30).pow(-0.5), torch.zeros_like(deg))
        return idx, val * inv_sqrt.unsqueeze(1) * inv_sqrt[idx]

    def item_graph_embedding(self, learned: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """:math:`h = S^L e^{id}`, with :math:`S` the learned/original mixture."""
        idx, val = learned
        mix = self.modal_mix()
        h = self.item_embedding
        for _ in range(self.hp.n_layers):
            h_learned = (val.unsqueeze(-1) * h[idx]).sum(1)
            h_original = functools.reduce(operator.add, (w * self.original_adj[m](h) for m, w in mix.items()))
            h = (1 - self.hp.lambda_coeff) * h_learned + self.hp.lambda_coeff * h_original
        return h

    def propagate(self, learned: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = lightgcn_propagate(self.adj, torch.cat([self.user_embedding, self.item_embedding]), self.n_ui_layers)
        h = self.item_graph_embedding(learned)
        return out[: self.n_users], out[self.n_users :] + F.normalize(h, p=2, dim=1)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        if self._rebuild or self._learned is None:
            learned = self.learned_graph()
            self._learned = (learned[0], learned[1].detach())
            self._rebuild = False
        else:
            learned = self._learned
        user_reps, item_reps = self.propagate(learned)
        u, i, j = user_reps.index_select(0, users), item_reps.index_select(0, pos), item_reps.index_select(0, neg)
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.hp.reg_weight * l2_sq_loss(u, i, j)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.learned_graph())
