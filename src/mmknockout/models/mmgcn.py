# TEMPORARY NOTE FOR THE PERSON OPTIMISING THIS FILE: first read /tmp/brief_common.md (rules, tools, report format); delete this line when done.
"""MMGCN: one graph-convolution branch per modality on the user-item graph, averaged."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, StackedTableRecommender
from .graph import GraphOperator, bipartite_adjacency, sparse_from_edges

N_GRAPH_LAYERS = 3  # hard-coded in the toolbox, whatever the config's n_layers says


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


class MMGCNBranch(nn.Module):
    """One modality's three-layer GCN with ID-embedding injection (paper eqs. 1-5, concat mode)."""

    def __init__(self, n_users: int, dim_feat: int, dim_id: int, latent: int | None, trainable: bool) -> None:
        super().__init__()
        self.project = nn.Linear(dim_feat, latent) if latent else None
        d_in = latent or dim_feat
        _frozen_or_trainable(self, "preference", nn.init.xavier_normal_(torch.empty(n_users, d_in)), trainable)
        dims = [d_in] + [dim_id] * (N_GRAPH_LAYERS - 1)
        self.conv_weights = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(d, d))) for d in dims
        )
        self.linears = nn.ModuleList(nn.Linear(d, dim_id) for d in dims)
        self.gates = nn.ModuleList(nn.Linear(d + dim_id, dim_id) for d in dims)
        for layer in self.linears:
            nn.init.xavier_normal_(layer.weight)
        nn.init.xavier_normal_(self.gates[0].weight)  # the toolbox re-initialises only the first gate

    def forward(self, features: torch.Tensor, id_embedding: torch.Tensor, adj_mean: GraphOperator) -> torch.Tensor:
        items = self.project(features) if self.project is not None else features
        x = F.normalize(torch.cat([self.preference, items]))
        for weight, linear, gate in zip(self.conv_weights, self.linears, self.gates):
            h = F.leaky_relu(adj_mean(x @ weight))
            x_hat = F.leaky_relu(linear(x)) + id_embedding
            x = F.leaky_relu(gate(torch.cat([h, x_hat], dim=1)))
        return x


class MMGCN(StackedTableRecommender):
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

    Frozen tensors (``trainable_embeddings: false``, the default): the toolbox creates
    :math:`E_{id}` and :math:`P_m` as plain tensors, not parameters, so the optimiser never updates
    them and the study measured a model whose ID embeddings and preferences are fixed random
    vectors. We reproduce that (they are buffers); consequently the regulariser is a constant and
    ``reg_weight`` does not change training. ``trainable_embeddings: true`` gives the paper's
    learned variant.

    Degenerate features: constant or all-zero rows give every item the same input row (zero stays
    zero: ``F.normalize`` has an eps), so items differ only through :math:`E_{id}` and the graph;
    nothing divides by zero, no NaN.

    Params: ``embedding_size`` (64), ``visual_latent`` (256), ``reg_weight``,
    ``trainable_embeddings``. Scoring uses a fresh full propagation (the toolbox reuses the last
    training batch's result).
    """

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.reg_weight = float(self.param("reg_weight"))
        trainable = bool(self.param("trainable_embeddings"))
        latent = int(self.param("visual_latent"))
        adj = bipartite_adjacency(data.train_users, data.train_items, self.n_users, self.n_items)
        self.adj_mean = GraphOperator(mean_adjacency(adj))
        _frozen_or_trainable(self, "id_embedding",
                             nn.init.xavier_normal_(torch.empty(self.n_users + self.n_items, d)), trainable)
        self.branches = nn.ModuleDict({
            "image": MMGCNBranch(self.n_users, features["image"].shape[1], d, latent, trainable),
            "text": MMGCNBranch(self.n_users, features["text"].shape[1], d, None, trainable),
        })
        for m in self.branches:
            self.register_buffer(f"{m}_features", features[m].float().clone())

    def propagate(self) -> torch.Tensor:
        """Mean over modalities of the branch outputs, [(U+I), d]."""
        outs = [branch(getattr(self, f"{m}_features"), self.id_embedding, self.adj_mean)
                for m, branch in self.branches.items()]
        return torch.stack(outs).mean(dim=0)

    def regulariser(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        both_users = torch.cat([users, users])
        emb = (self.id_embedding[both_users].pow(2) + self.id_embedding[items].pow(2)).mean()
        return self.reg_weight * (emb + self.branches["image"].preference.pow(2).mean())
