"""DRAGON: DualGNN-style modal GCNs plus frozen item-item and sampled user-user graphs."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from ..errors import InputError
from .base import Features, Recommender
from .blocks import modality_weights, xavier_table
from .graph import (
    GraphOperator,
    mixed_knn_graph,
    normalized_adjacency,
    sparse_from_edges,
)
from .params import HyperParams, hp

#: user-user neighbours aggregated per user (hard-coded in DRAGON)
USER_NEIGHBOURS = 40


@dataclass(frozen=True, kw_only=True)
class DRAGONParams(HyperParams):
    """DRAGON's hyper-parameters (config/models/DRAGON.yaml)."""

    knn_k: int = hp(doc="neighbours per item in each modality's kNN graph", ge=1)
    mm_image_weight: float = hp(doc="weight of the image graph in the mixed item graph", ge=0, le=1)
    n_mm_layers: int = hp(doc="propagations on the item-item graph", ge=0)
    aggr_mode: str = hp(doc="aggregation of the modal GCNs (only 'add' is implemented)", choices=("add",))
    reg_weight: float = hp(doc="weight of the preference and user-weight penalty", ge=0)


class ModalGCN(nn.Module):
    """One modality's branch: MLP(feat -> 4d -> d) on raw features, two hops on the UI graph.

    ``x = normalise([P; MLP(f)])``, ``x_hat = x + A x + A A x`` with ``A`` the symmetrically
    normalised user-item graph and ``P`` the learned user preferences of this modality.
    """

    def __init__(self, n_users: int, feat_dim: int, d: int) -> None:
        super().__init__()
        self.preference = xavier_table(n_users, d, normal=True)
        self.mlp_in = nn.Linear(feat_dim, 4 * d)
        self.mlp_out = nn.Linear(4 * d, d)

    def forward(self, adj: GraphOperator, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(torch.cat([self.preference, self.mlp_out(F.leaky_relu(self.mlp_in(features)))]), dim=1)
        h1 = adj(x)
        h2 = adj(h1)
        return x + h1 + h2


class DRAGON(Recommender):
    r"""DRAGON (Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
    Recommendation", ECAI 2023, https://arxiv.org/abs/2301.12097), as in the MMRec toolbox.

    * Per modality m (raw, non-trainable features): :math:`x^m = \mathrm{norm}([P^m;
      W_2\,\mathrm{lrelu}(W_1 f^m)])` (feat -> 256 -> 64), :math:`\hat x^m = x^m + A x^m + A^2 x^m`
      on the symmetrically normalised user-item graph (``aggr_mode`` 'add').
    * Heterogeneous reps: item :math:`i = [\hat x^v_i; \hat x^t_i]` (128-d); user
      :math:`u = [w_{u,0}\hat x^v_u; w_{u,1}\hat x^t_u]` with per-user weights :math:`w_u`
      (initialised as a softmax of Xavier-normal values, then trained freely).
    * Homogeneous graphs: item :math:`i \mathrel{+}= S^{L} i` with the frozen
      :math:`S = \alpha S^v + (1-\alpha) S^t` (unit-weight top-``knn_k`` cosine graphs of the raw
      features, symmetrically normalised; ``mm_image_weight`` = :math:`\alpha`, ``n_mm_layers`` =
      L); user :math:`u \mathrel{+}= \sum_{j} \omega_{uj} u_j` over 40 neighbours of
      ``data.user_graph`` with :math:`\omega_u = \mathrm{softmax}` of the co-interaction counts.
    * Loss: :math:`-\overline{\log_2 \sigma(s^+ - s^-)}` + ``reg_weight`` *
      (mean :math:`(P^v_u)^2` + mean :math:`(P^t_u)^2` over the batch users + mean :math:`w^2`).

    User-user sampling (each epoch, torch RNG, vectorised): users with >= 40 neighbours take their
    first 40; users with 1..39 fill the missing slots with uniform draws from their own list (the
    draws and their counts enter the softmax); users with none get zero weights (no aggregation).
    MMRec draws the padding from the list as it grows; we draw from the original list.

    One slot (or the ``absent`` condition), as MMRec's ``cat`` construction with ``v_feat`` or
    ``t_feat`` None: only the present modality's branch exists, item :math:`i = \hat x^m_i`, user
    :math:`u = \hat x^m_u` (no modality weights, so neither :math:`w_u` nor its penalty: MMRec keeps
    the unused :math:`w_u` and its penalty, which does not change any score), :math:`S = S^m`, and
    only :math:`P^m` is penalised.

    Args (:class:`DRAGONParams`): ``embedding_size``, ``knn_k``, ``mm_image_weight``,
    ``n_mm_layers``, ``aggr_mode`` ('add' only), ``reg_weight``.

    Degenerate features: the GCN input is normalised with an eps, so zero features make every item
    feature part equal to the MLP bias (no NaN). The kNN graph uses cosine 0 for zero rows and
    lowest-index ties (:mod:`.graph`): zero or constant features give the hub graph where every
    item links to items ``0..k-1``; noise gives an essentially random graph.
    """

    Params = DRAGONParams
    family = "hybrid"
    requires = ("user_graph",)
    optional_modalities = ("text", "image")

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size

        #: the present modalities, image first (the order of the representation halves)
        self.graph_modalities = tuple(m for m in ("image", "text") if m in self.present_modalities)
        for m in self.graph_modalities:
            self.register_buffer(f"{m}_features", features[m].clone().float())
        self.gcns = nn.ModuleDict({m: ModalGCN(self.n_users, features[m].shape[1], d) for m in self.graph_modalities})
        if len(self.graph_modalities) == 2:
            self.user_weight = modality_weights(self.n_users)

        self.mm_adj = mixed_knn_graph(features, self.hp.knn_k, self.hp.mm_image_weight)
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        self.register_neighbours(data)
        self.on_epoch_start(0)

    # ----- user-user graph ----------------------------------------------------------------------
    def register_neighbours(self, data: SplitData) -> None:
        ids = torch.as_tensor(data.user_graph.ids[:, :USER_NEIGHBOURS], dtype=torch.long)
        counts = torch.as_tensor(data.user_graph.weights[:, :USER_NEIGHBOURS], dtype=torch.float32)
        if ids.shape[0] != self.n_users:
            raise InputError("DRAGON: the user graph does not match the dataset's users")
        self.register_buffer("neighbour_ids", ids)
        self.register_buffer("neighbour_counts", counts)
        self.register_buffer("neighbour_len", (ids >= 0).sum(1))
        self.register_buffer(
            "epoch_neighbours", torch.zeros(self.n_users, USER_NEIGHBOURS, dtype=torch.long), persistent=False
        )
        self.register_buffer("epoch_weights", torch.zeros(self.n_users, USER_NEIGHBOURS), persistent=False)
        self.user_user = GraphOperator(self.user_user_matrix())

    def on_epoch_start(self, epoch: int) -> None:
        """Fill every user's list to 40 slots by resampling its own neighbours; softmax weights."""
        n, have = self.neighbour_ids.shape
        device = self.neighbour_ids.device
        if have == 0:
            self.epoch_neighbours = torch.zeros(n, USER_NEIGHBOURS, dtype=torch.long, device=device)
            self.epoch_weights = torch.zeros(n, USER_NEIGHBOURS, device=device)
            self.user_user = GraphOperator(self.user_user_matrix())
            return
        length = self.neighbour_len.unsqueeze(1)
        slot = torch.arange(USER_NEIGHBOURS, device=device).unsqueeze(0)
        draw = (torch.rand(n, USER_NEIGHBOURS, device=device) * length).long()
        pick = torch.where(slot < length, slot, draw).clamp_max(have - 1)
        ids = torch.gather(self.neighbour_ids, 1, pick)
        counts = torch.gather(self.neighbour_counts, 1, pick)
        empty = length == 0
        self.epoch_neighbours = ids.masked_fill(empty, 0)
        self.epoch_weights = torch.softmax(counts, dim=1).masked_fill(empty, 0.0)
        self.user_user = GraphOperator(self.user_user_matrix())

    def user_user_matrix(self) -> torch.Tensor:
        """This epoch's sampled neighbours as a sparse n_users x n_users weight matrix.

        Repeated draws of a neighbour are summed, so ``W @ U`` equals the weighted sum over the 40
        slots; a sparse product keeps the gradient deterministic (an index-gather with repeated
        indices accumulates its gradient in a thread-dependent order on CPU).
        """
        n = self.epoch_neighbours.shape[0]
        rows = torch.arange(n, device=self.epoch_neighbours.device).repeat_interleave(USER_NEIGHBOURS)
        return sparse_from_edges(rows, self.epoch_neighbours.reshape(-1), self.epoch_weights.reshape(-1), (n, n))

    # ----- representations ----------------------------------------------------------------------
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        reps = [self.gcns[m](self.adj, self.get_buffer(f"{m}_features")) for m in self.graph_modalities]
        if len(reps) == 2:
            v, t = reps
            users = torch.cat(
                [self.user_weight[:, 0] * v[: self.n_users], self.user_weight[:, 1] * t[: self.n_users]], dim=1
            )
        else:
            users = reps[0][: self.n_users]
        items = torch.cat([r[self.n_users :] for r in reps], dim=1)
        h = items
        for _ in range(self.hp.n_mm_layers):
            h = self.mm_adj(h)
        social = self.user_user(users)
        return users + social, items + h

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate()
        u = user_reps.index_select(0, users)
        diff = (u * item_reps.index_select(0, pos)).sum(1) - (u * item_reps.index_select(0, neg)).sum(1)
        rank = -(F.logsigmoid(diff) / math.log(2.0)).mean()
        terms = [gcn.preference.index_select(0, users).pow(2).mean() for gcn in self.gcns.values()]
        if len(self.gcns) == 2:
            terms.append(self.user_weight.pow(2).mean())
        return rank + self.hp.reg_weight * functools.reduce(operator.add, terms)
