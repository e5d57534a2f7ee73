"""Building blocks shared by several models: ID tables, trainable feature tables, gates and the
side/content model family of MGCN and SMORE.

Every block draws its random numbers in the order the models drew them before the blocks
existed (tables in argument order; all projections constructed before any is re-initialised),
so a model built from blocks gives the same numbers for a seed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .base import Features, Recommender
from .graph import GraphOperator
from .losses import bpr_loss, info_nce_distinct, l2_sq_loss

#: InfoNCE temperature of the side/content alignment, hard-coded in MMRec's MGCN and SMORE
CL_TEMPERATURE = 0.2


def xavier_table(rows: int, cols: int, normal: bool = False) -> nn.Parameter:
    """A ``rows x cols`` trainable table, Xavier-uniform (or Xavier-normal) initialised."""
    init = nn.init.xavier_normal_ if normal else nn.init.xavier_uniform_
    return nn.Parameter(init(torch.empty(rows, cols)))


def id_tables(n_users: int, n_items: int, d: int, normal: bool = False) -> tuple[nn.Parameter, nn.Parameter]:
    """User and item ID embeddings (users drawn first), see :func:`xavier_table`."""
    return xavier_table(n_users, d, normal), xavier_table(n_items, d, normal)


def modality_weights(rows: int, n_modalities: int = 2) -> nn.Parameter:
    """Per-row fusion weights ``[rows, n_modalities, 1]``, a softmax of Xavier-normal draws, then
    trained freely (DualGNN, DRAGON)."""
    return nn.Parameter(torch.softmax(nn.init.xavier_normal_(torch.empty(rows, n_modalities, 1)), dim=1))


class FeatureTables(nn.Module):
    r"""Trainable copies of the condition's feature matrices, each with a projection
    :math:`W_m f^m + b_m` to ``out_dim``.

    Args:
        features: the condition's feature matrices.
        names: the modalities, in the order their projections are constructed.
        out_dim: width of the projections.
        xavier: re-initialise the projection weights Xavier-normal (after all are constructed).
        zero_bias: with ``xavier``, also zero the biases.
    """

    def __init__(
        self, features: Features, names: Iterable[str], out_dim: int, xavier: bool = False, zero_bias: bool = False
    ) -> None:
        super().__init__()
        names = tuple(names)
        self.tables = nn.ParameterDict({m: nn.Parameter(features[m].detach().clone().float()) for m in names})
        self.projections = nn.ModuleDict({m: nn.Linear(features[m].shape[1], out_dim) for m in names})
        if xavier:
            for layer in self.projections.values():
                nn.init.xavier_normal_(layer.weight)
                if zero_bias:
                    nn.init.zeros_(layer.bias)

    def forward(self, m: str, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Projected features of modality ``m``: all items, or the items ``rows``."""
        table = self.tables[m]
        return self.projections[m](table if rows is None else table.index_select(0, rows))


def gate(d: int) -> nn.Sequential:
    """``sigmoid(W x + b)``, the gate used for purifying and preference weighting."""
    return nn.Sequential(nn.Linear(d, d), nn.Sigmoid())


def take_rows(rows: torch.Tensor | None, *tables: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``table[rows]`` for each table (all rows when ``rows`` is None)."""
    return tables if rows is None else tuple(t.index_select(0, rows) for t in tables)


class SideContentRecommender(Recommender):
    """Shared by MGCN and SMORE: ``propagate(rows)`` gives (side, content) tables of the given rows
    of the users-then-items node list (all when None); the representation is their sum, trained
    with BPR + ``reg_weight`` L2 + ``cl_loss`` times the InfoNCE between the side and content views
    of the batch's users and positive items.

    A subclass sets ``self.R`` (the user x item block of the normalised user-item graph) and reads
    ``n_layers``, ``reg_weight`` and ``cl_loss`` from its hyper-parameters. A training batch
    evaluates the side view only on its own distinct nodes (every operation after the graph
    propagations is row-wise) and the InfoNCE on distinct rows (:func:`.losses.info_nce_distinct`).
    """

    R: GraphOperator

    def propagate(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def item_item_view(self, item_embeds: torch.Tensor, item_adj: GraphOperator) -> torch.Tensor:
        """``n_layers`` propagations on an item graph, users by :math:`\\hat R`; (U+I) x d."""
        for _ in range(self.hp.n_layers):
            item_embeds = item_adj(item_embeds)
        return torch.cat([self.R(item_embeds), item_embeds])

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        rows, index = torch.unique(nodes, return_inverse=True)
        side, content = self.propagate(rows)
        final = content + side
        at_u, at_i, at_j = index.split([users.numel(), pos.numel(), neg.numel()])
        u, i, j = final[at_u], final[at_i], final[at_j]
        rec = bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.hp.reg_weight * l2_sq_loss(u, i, j)
        cl = info_nce_distinct(side, content, at_i, CL_TEMPERATURE) + info_nce_distinct(
            side, content, at_u, CL_TEMPERATURE
        )
        return rec + self.hp.cl_loss * cl

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        side, content = self.propagate()
        final = content + side
        return final[: self.n_users], final[self.n_users :]
