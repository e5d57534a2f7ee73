"""MMGCN: one graph-convolution branch per modality on the user-item graph, averaged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender, unique_items
from .graph import BipartiteBlocks, bipartite_adjacency, sparse_from_edges
from .losses import bpr_loss
from .ops import mean_square, row_normalize
from .params import HyperParams, hp

N_GRAPH_LAYERS = 3  # hard-coded in the toolbox, whatever the config's n_layers says

Halves = tuple[torch.Tensor, torch.Tensor]  # (user rows, item rows) of one node table


@dataclass(frozen=True, kw_only=True)
class MMGCNParams(HyperParams):
    """MMGCN's hyper-parameters (config/models/MMGCN.yaml)."""

    n_layers: int = hp(2, "unused: the toolbox hard-codes 3 graph layers", ge=0)
    visual_latent: int = hp(256, "width of the image projection (text enters raw)", ge=1)
    trainable_embeddings: bool = hp(doc="learn the ID embeddings and preferences (false: the toolbox's fixed ones)")
    reg_weight: float = hp(doc="weight of the squared-embedding penalty", ge=0)


def mean_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``D^-1 A``: each node averages its neighbours (isolated nodes get zero)."""
    adj = adj.coalesce()
    rows, cols = adj.indices()
    deg = torch.sparse.sum(adj, dim=1).to_dense()
    inv = torch.where(deg > 0, 1.0 / deg.clamp_min(1e-30), torch.zeros_like(deg))
    return sparse_from_edges(rows, cols, adj.values() * inv[rows], tuple(adj.shape))


def _frozen_or_trainable(module: nn.Module, name: str, value: torch.Tensor, trainable: bool) -> None:
    if trainable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _gated(gate: nn.Linear, h: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``lrelu(G [h; x_hat] + b)`` as two products, without building the concatenation."""
    d = h.shape[1]
    return F.leaky_relu(
        torch.addmm(F.linear(x_hat, gate.weight[:, d:], gate.bias), h, gate.weight[:, :d].t()), inplace=True
    )


class MMGCNBranch(nn.Module):
    """One modality's three-layer GCN with ID-embedding injection (paper eqs. 1-5, concat mode).

    Works on the user and item halves of the node table separately: on a bipartite graph the
    aggregation of users reads only items and vice versa, so each half can use the cheaper order
    of ``A (x W) = (A x) W``: users aggregate the *projected* items (``I d^2`` flops instead of
    ``U d^2``), items project their *aggregated* users (``I d^2`` instead of ``U d^2``).
    """

    def __init__(self, n_users: int, dim_feat: int, dim_id: int, latent: int | None, trainable: bool) -> None:
        super().__init__()
        self.project = nn.Linear(dim_feat, latent) if latent else None
        d_in = latent or dim_feat
        _frozen_or_trainable(self, "preference", nn.init.xavier_normal_(torch.empty(n_users, d_in)), trainable)
        dims = [d_in] + [dim_id] * (N_GRAPH_LAYERS - 1)
        self.conv_weights = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(d, d))) for d in dims)
        self.linears = nn.ModuleList(nn.Linear(d, dim_id) for d in dims)
        self.gates = nn.ModuleList(nn.Linear(d + dim_id, dim_id) for d in dims)
        for layer in self.linears:
            nn.init.xavier_normal_(layer.weight)
        nn.init.xavier_normal_(self.gates[0].weight)  # the toolbox re-initialises only the first gate

    def layer(self, index: int, x: Halves, ids: Halves, graph: BipartiteBlocks) -> Halves:
        """One full layer on both halves."""
        weight, linear, gate = self.conv_weights[index], self.linears[index], self.gates[index]
        x_u, x_i = x
        h_u = F.leaky_relu(graph.to_users(x_i @ weight), inplace=True)
        h_i = F.leaky_relu(graph.to_items(x_u) @ weight, inplace=True)
        return (
            _gated(gate, h_u, F.leaky_relu(linear(x_u), inplace=True) + ids[0]),
            _gated(gate, h_i, F.leaky_relu(linear(x_i), inplace=True) + ids[1]),
        )

    def layer_at(self, index: int, x: Halves, ids: Halves, graph: BipartiteBlocks, rows: Halves) -> Halves:
        """One layer evaluated only at the given user and item rows (``ids`` already selected)."""
        weight, linear, gate = self.conv_weights[index], self.linears[index], self.gates[index]
        x_u, x_i = x
        users, items = rows
        h_u = F.leaky_relu(graph.to_users(x_i).index_select(0, users) @ weight, inplace=True)
        h_i = F.leaky_relu(graph.to_items(x_u).index_select(0, items) @ weight, inplace=True)
        return (
            _gated(gate, h_u, F.leaky_relu(linear(x_u.index_select(0, users)), inplace=True) + ids[0]),
            _gated(gate, h_i, F.leaky_relu(linear(x_i.index_select(0, items)), inplace=True) + ids[1]),
        )

    def forward(
        self, item_input: torch.Tensor, ids: Halves, graph: BipartiteBlocks, rows: Halves | None = None
    ) -> Halves:
        """Final (user, item) rows; all of them, or only ``rows`` (then ``ids`` are the full halves)."""
        x = (row_normalize(self.preference), item_input)
        last = len(self.conv_weights) - 1
        for index in range(last):
            x = self.layer(index, x, ids, graph)
        if rows is None:
            return self.layer(last, x, ids, graph)
        picked = (ids[0].index_select(0, rows[0]), ids[1].index_select(0, rows[1]))
        return self.layer_at(last, x, picked, graph, rows)


class MMGCN(Recommender):
    r"""MMGCN (Wei, Wang, Nie, He, Hong & Chua, ACM MM 2019, https://doi.org/10.1145/3343031.3351034),
    as implemented in the MMRec toolbox.

    Per modality ``m`` a branch on the symmetric user-item graph (nodes: U users, then I items):

    * input :math:`x^0 = \mathrm{norm}([P_m; \tilde f])`, with :math:`\tilde f = W f + b`,
      Linear(d_v -> ``visual_latent`` = 256) for images and the **raw** text features for text;
      :math:`P_m` are user preference vectors of the same width;
    * three layers (hard-coded; the yaml's ``n_layers: 2`` is unused, as in the toolbox):
      :math:`h = \mathrm{lrelu}(\mathrm{mean}_{j \in N(v)} x_j W^l)` (mean aggregation),
      :math:`\hat x = \mathrm{lrelu}(L^l x) + E_{id}`,
      :math:`x \leftarrow \mathrm{lrelu}(G^l [h; \hat x])`. The toolbox sets ``concate = 'False'``,
      a non-empty (truthy) string, so this concatenation gate is the active mode.

    Representation :math:`r = (r^{image} + r^{text}) / 2`, score = dot product.
    Loss: BPR + ``reg_weight`` * (mean of :math:`E_{id}^2` over the batch users, positives and
    negatives + mean of the whole image preference table squared).

    Computation (same values, fewer operations): the graph is bipartite, so users and items are
    kept as separate halves and each half aggregates in its cheaper order (see
    :class:`MMGCNBranch`); a training batch evaluates the last layer only at its own users and
    items, the only rows the loss reads.

    Frozen tensors (``trainable_embeddings: false``): the toolbox creates :math:`E_{id}` and
    :math:`P_m` as plain tensors, not parameters, so the optimiser never updates them and the
    study measured a model whose ID embeddings and preferences are fixed random vectors. That
    variant is available (they are buffers; the regulariser is then a constant and ``reg_weight``
    does not change training); ``trainable_embeddings: true`` gives the paper's learned variant.

    Degenerate features: constant or all-zero rows give every item the same input row (zero stays
    zero: ``F.normalize`` has an eps), so items differ only through :math:`E_{id}` and the graph;
    nothing divides by zero, no NaN.

    Args (:class:`MMGCNParams`): ``embedding_size`` (64), ``visual_latent`` (256), ``reg_weight``,
    ``trainable_embeddings``. Scoring uses a fresh full propagation (the toolbox reuses the last
    training batch's result).
    """

    Params = MMGCNParams
    family = "user-item graph"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        trainable, latent = self.hp.trainable_embeddings, self.hp.visual_latent
        adj = bipartite_adjacency(data.train_users, data.train_items, self.n_users, self.n_items)
        self.graph = BipartiteBlocks(mean_adjacency(adj), self.n_users)
        _frozen_or_trainable(
            self, "id_embedding", nn.init.xavier_normal_(torch.empty(self.n_users + self.n_items, d)), trainable
        )
        self.branches = nn.ModuleDict(
            {
                "image": MMGCNBranch(self.n_users, features["image"].shape[1], d, latent, trainable),
                "text": MMGCNBranch(self.n_users, features["text"].shape[1], d, None, trainable),
            }
        )
        for m, branch in self.branches.items():
            raw = features[m].float().clone()
            # a branch without projection reads constant item rows: normalise them once
            self.register_buffer(f"{m}_features", raw if branch.project is not None else F.normalize(raw))

    def item_input(self, m: str) -> torch.Tensor:
        """Normalised item rows of the branch input :math:`x^0` (stored when constant)."""
        features, project = getattr(self, f"{m}_features"), self.branches[m].project
        return row_normalize(project(features)) if project is not None else features

    def propagate(self, rows: Halves | None = None) -> Halves:
        """Mean over modalities of the branch outputs: (users, items), all rows or only ``rows``."""
        ids = self.id_embedding.split([self.n_users, self.n_items])
        outs = [branch(self.item_input(m), ids, self.graph, rows) for m, branch in self.branches.items()]
        return (outs[0][0] + outs[1][0]) / 2, (outs[0][1] + outs[1][1]) / 2

    def regulariser(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        both_users = torch.cat([users, users])
        emb = (self.id_embedding[both_users].pow(2) + self.id_embedding[items + self.n_users].pow(2)).mean()
        return self.hp.reg_weight * (emb + mean_square(self.branches["image"].preference))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        items, pos_at, neg_at = unique_items(pos, neg)
        u, i = self.propagate((users, items))
        scores_pos = (u * i.index_select(0, pos_at)).sum(1)
        scores_neg = (u * i.index_select(0, neg_at)).sum(1)
        return bpr_loss(scores_pos, scores_neg) + self.regulariser(users, torch.cat([pos, neg]))

    def representations(self) -> Halves:
        return self.propagate()
