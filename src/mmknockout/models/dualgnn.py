"""DualGNN: per-modality user-item GCNs fused per user, plus a user-user co-interaction graph."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import modality_weights, xavier_table
from .graph import BipartiteBlocks, normalized_adjacency
from .losses import bpr_loss
from .ops import mean_square, row_normalize
from .params import HyperParams, hp

#: modality order of the toolbox's fusion weights: image ("v") first, then text ("t")
MODALITIES = ("image", "text")


@dataclass(frozen=True, kw_only=True)
class DualGNNParams(HyperParams):
    """DualGNN's hyper-parameters (config/models/DualGNN.yaml)."""

    n_layers: int = hp(2, "unused: one 2-hop propagation is hard-coded in the toolbox", ge=0)
    user_graph_k: int = hp(40, "neighbours per user taken from the user graph", ge=1)
    aggr_mode: str = hp("add", "aggregation of the modal GCNs (only 'add' is implemented)", choices=("add",))
    reg_weight: float = hp(doc="weight of the preference and fusion-weight penalty", ge=0)


def pad_columns(ids: torch.Tensor, counts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``k`` neighbour columns, padded with -1 / 0 when the stored graph is narrower."""
    ids, counts = ids[:, :k], counts[:, :k]
    if ids.shape[1] < k:
        extra = k - ids.shape[1]
        ids = torch.cat([ids, ids.new_full((ids.shape[0], extra), -1)], dim=1)
        counts = torch.cat([counts, counts.new_zeros((counts.shape[0], extra))], dim=1)
    return ids, counts


def urn_positions(n_valid: torch.Tensor, k: int) -> torch.Tensor:
    """Column positions [n, k] that pad every list of ``n_valid`` entries to length ``k``.

    Position ``p < n_valid`` is kept; each later position copies a uniformly drawn earlier one of
    the *growing* list (``p`` choices), exactly the toolbox's append-a-random-element loop, but
    vectorised over users (the loop runs over the ``k`` positions only). Uses torch's global RNG.
    Rows with ``n_valid == 0`` are returned as zeros (the caller masks them).
    """
    n = n_valid.shape[0]
    rows = torch.arange(n, device=n_valid.device)
    pos = torch.zeros(n, k, dtype=torch.long, device=n_valid.device)
    for p in range(1, k):
        draw = (torch.rand(n, device=n_valid.device) * p).long().clamp_max(p - 1)
        pos[:, p] = torch.where(n_valid > p, torch.full_like(draw, p), pos[rows, draw])
    return pos


class DualGNN(Recommender):
    r"""DualGNN (Wang, Wei, Yin, Li, Liu & Nie, IEEE TMM 2021, https://doi.org/10.1109/TMM.2021.3138298),
    as implemented in the MMRec toolbox.

    Per modality ``m`` (image, then text), with raw features fixed:

    * :math:`\tilde f = W_2\, \mathrm{lrelu}(W_1 f + b_1) + b_2` (feat -> 4d = 256 -> d = 64);
    * :math:`x = \mathrm{norm}([P_m; \tilde f])` (learned user preferences :math:`P_m`);
    * :math:`r^m = x + A x + A^2 x` with :math:`A = D^{-1/2} R D^{-1/2}` the symmetric user-item
      graph (``aggr_mode: add``; the yaml's ``n_layers`` is unused, as in the toolbox).

    Items: :math:`r_i = r^{image}_i + r^{text}_i`. Users: :math:`\bar r_u = \omega_{u,1} r^{image}_u +
    \omega_{u,2} r^{text}_u`, where :math:`\omega \in \mathbb{R}^{U \times 2}` is initialised as a
    per-user softmax of Xavier noise and then trained freely (the toolbox does not re-normalise it).
    User-user graph: :math:`r_u = \bar r_u + \sum_{k} s_{uk} \bar r_{n_{uk}}` over ``user_graph_k``
    (40) neighbours, the first of the top-200 co-interaction list, :math:`s_u = \mathrm{softmax}` of
    their raw co-counts. Users with fewer than 40 neighbours are padded each epoch by repeatedly
    appending a uniformly drawn element of the growing list (torch RNG); users with none get all-zero
    weights (no user-graph term). Score = dot product.

    Loss: :math:`-\mathrm{mean}\log_2\sigma(s_{ui} - s_{uj})` (base-2 log, as in the toolbox) +
    ``reg_weight`` * (mean :math:`P_{image}[u]^2` + mean :math:`P_{text}[u]^2` over batch users +
    mean :math:`\omega^2` + mean of the unused per-item weights squared).

    Degenerate features: constant or all-zero rows give every item the same content vector
    (zero stays zero: ``F.normalize`` has an eps), so items differ only through the graph; no NaN.

    Computation (same values, fewer operations): the graph is bipartite, so users and items are
    kept as separate halves and the two hops are regrouped by linearity:
    :math:`r^m_u = x^m_u + A_{ui}(x^m_i + A_{iu} x^m_u)` (both modalities in one 2d-wide product)
    and :math:`r_i = \sum_m (x^m_i + A_{iu} x^m_u) + A_{iu} A_{ui} \sum_m x^m_i`; a training batch
    applies the user-user graph only at its own users (``embedding_bag`` over the sampled lists).

    Args (:class:`DualGNNParams`): ``embedding_size`` (64), ``user_graph_k`` (40), ``aggr_mode`` (only ``add``),
    ``reg_weight``. Not reproduced: the toolbox's modality-drop edge lists (built but never used by
    its forward) and its scoring from the last training batch (we propagate afresh).
    """

    Params = DualGNNParams
    family = "user-item graph"
    requires = ("user_graph",)

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.graph = BipartiteBlocks(
            normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items), self.n_users
        )

        self.mlp_in = nn.ModuleDict()
        self.mlp_out = nn.ModuleDict()
        self.preferences = nn.ParameterDict()
        for m in MODALITIES:
            self.register_buffer(f"{m}_features", features[m].float().clone())
            self.mlp_in[m] = nn.Linear(features[m].shape[1], 4 * d)
            self.mlp_out[m] = nn.Linear(4 * d, d)
            self.preferences[m] = xavier_table(self.n_users, d, normal=True)
        self.user_weight, self.item_weight = modality_weights(self.n_users), modality_weights(self.n_items)

        ids, counts = pad_columns(
            torch.as_tensor(data.user_graph.ids, dtype=torch.long),
            torch.as_tensor(data.user_graph.weights, dtype=torch.float32),
            self.hp.user_graph_k,
        )
        self.register_buffer("neighbour_ids", ids)
        self.register_buffer("neighbour_counts", counts)
        self.register_buffer("n_neighbours", (ids >= 0).sum(dim=1))
        # this epoch's user-user lists: [U, k] neighbour ids and weights (re-drawn every epoch)
        self.register_buffer("epoch_ids", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("epoch_weights", torch.empty(0), persistent=False)
        self.sample_user_graph()

    # ----------------------------------------------------------------------------- user graph
    def sample_user_graph(self) -> None:
        """Draw this epoch's padded neighbour lists and their softmax weights."""
        pos = urn_positions(self.n_neighbours, self.hp.user_graph_k)
        ids = self.neighbour_ids.gather(1, pos)
        weights = F.softmax(self.neighbour_counts.gather(1, pos), dim=1)
        has = (self.n_neighbours > 0).unsqueeze(1)
        self.epoch_ids = torch.where(has, ids, torch.zeros_like(ids))
        self.epoch_weights = torch.where(has, weights, torch.zeros_like(weights))

    def on_epoch_start(self, epoch: int) -> None:
        self.sample_user_graph()

    def user_graph_dense(self) -> torch.Tensor:
        """This epoch's U x U aggregation matrix (repeated neighbours summed); for inspection."""
        dense = torch.zeros(self.n_users, self.n_users, device=self.epoch_ids.device)
        return dense.scatter_add_(1, self.epoch_ids, self.epoch_weights)

    def user_graph_sum(self, fused: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\sum_k s_{uk} \bar r_{n_{uk}}` from ``fused`` = :math:`\bar r` [U, d], for ``rows``
        (all users when None)."""
        ids, weights = self.epoch_ids, self.epoch_weights
        if rows is not None:
            ids, weights = ids.index_select(0, rows), weights.index_select(0, rows)
        return F.embedding_bag(ids, fused, per_sample_weights=weights, mode="sum")

    # ---------------------------------------------------------------------------- propagation
    def modality_input(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`x = \mathrm{norm}([P_m; \tilde f])` as (user rows, item rows)."""
        content = self.mlp_out[m](F.leaky_relu(self.mlp_in[m](getattr(self, f"{m}_features"))))
        return row_normalize(self.preferences[m]), row_normalize(content)

    def fused_halves(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""(:math:`\bar r_u` [U, d], the users before the user-user graph; item reps [I, d])."""
        (v_u, v_i), (t_u, t_i) = (self.modality_input(m) for m in MODALITIES)
        hop = torch.cat([v_i, t_i], dim=1) + self.graph.to_items(torch.cat([v_u, t_u], dim=1))  # x_i + A_iu x_u
        reps = self.graph.to_users(hop)  # A_ui x_i + A_ui A_iu x_u, both modalities side by side
        (r_v, r_t), (hop_v, hop_t) = reps.split(self.embedding_size, dim=1), hop.split(self.embedding_size, dim=1)
        w_v, w_t = self.user_weight.unbind(1)
        users = (v_u + r_v) * w_v + (t_u + r_t) * w_t
        items = hop_v + hop_t + self.graph.to_items(self.graph.to_users(v_i + t_i))
        return users, items

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user reps [U, d], item reps [I, d])."""
        users, items = self.fused_halves()
        return users + self.user_graph_sum(users), items

    # ------------------------------------------------------------------------------ training
    def regulariser(self, users: torch.Tensor) -> torch.Tensor:
        pref = sum(self.preferences[m].index_select(0, users).pow(2).mean() for m in MODALITIES)
        return self.hp.reg_weight * (pref + mean_square(self.user_weight) + mean_square(self.item_weight))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        fused, item_reps = self.fused_halves()
        u = fused.index_select(0, users) + self.user_graph_sum(fused, users)
        scores_pos = (u * item_reps.index_select(0, pos)).sum(1)
        scores_neg = (u * item_reps.index_select(0, neg)).sum(1)
        return bpr_loss(scores_pos, scores_neg) / math.log(2) + self.regulariser(users)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()
