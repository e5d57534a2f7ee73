"""BM3: bootstrapped latent representations without negative sampling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import FeatureTables, id_tables
from .graph import GraphOperator, lightgcn_propagate, normalized_adjacency
from .losses import emb_norm_loss
from .ops import GatherRows, Scratch
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class BM3Params(HyperParams):
    """BM3's hyper-parameters (config/models/BM3.yaml)."""

    n_layers: int = hp(doc="LightGCN layers", ge=0)
    reg_weight: float = hp(doc="weight of EmbLoss on the full online tables", ge=0)
    dropout: float = hp(doc="dropout rate of the target copies", ge=0, lt=1)
    cl_weight: float = hp(doc="weight of the modal alignment terms", ge=0)


def alignment_loss(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean cos(online, target)`` with the target treated as a constant (stop-gradient)."""
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()


class BM3(Recommender):
    r"""BM3 (Zhou, Zhou, Zhang, Liu, Cao, Wang, Miao; WWW 2023, https://arxiv.org/abs/2207.05969).

    Online network. LightGCN over the normalised user-item graph :math:`\tilde A` gives
    :math:`[H_u; H_i] = \mathrm{mean}_{l=0..L} \tilde A^l E`, and, as in the MMRec toolbox, the ego
    item embedding is added back: :math:`h_i \leftarrow h_i + e_i`. Modal item latents are
    :math:`h_m = W_m x_m + b_m` with *trainable* feature tables :math:`x_m` (text, image).

    Targets (no gradient): dropout copies :math:`\tilde h = \mathrm{dropout}_p(h)` of the online
    user, item and modal latents (a fresh mask per batch from the torch global RNG).

    Predictor: one shared ``Linear(d, d)`` :math:`g`. With :math:`c(a, b)=1-\cos(a, b)` averaged over
    the batch (users ``u``, positive items ``i``; negatives are ignored):

    .. math::
        L = c(g h_u, \tilde h_i) + c(g h_i, \tilde h_u)
            + \lambda_{cl} \sum_{m\in M} [c(g h_m, \tilde h_i) + c(g h_m, \tilde h_m)]
            + \lambda_{reg} (\|H_u\|_F + \|H_i\|_F) / n_{items}

    :math:`M` is the set of present modalities (text, image): with one slot, or under the ``absent``
    condition, only that modality's table, projection and two alignment terms exist (as MMRec with
    ``v_feat`` or ``t_feat`` None). The regulariser is MMRec's EmbLoss on the *full* online user
    and item matrices, as in bm3.py.
    Scores: :math:`(g h_u)^\top (g h_i)`; the features never enter the score.

    A training batch projects the feature rows of its distinct positive items only (the loss reads
    no other modal latent, and their feature gradient is zero either way); each dropout mask is
    still drawn for the full table, as in the toolbox, and applied to the rows read: same draws,
    same values.

    Args (:class:`BM3Params`): ``embedding_size`` (64), ``n_layers``, ``reg_weight``, ``dropout``,
    ``cl_weight``.

    Degenerate features: an all-zero or constant feature table gives every item the same modal
    latent (the Linear bias), so the modal terms only pull all items towards one direction; cosine
    carries an eps (1e-8), so zero vectors give cosine 0 and no NaN. Since the tables are trainable,
    the knocked-out values are only the initialisation.
    """

    Params = BM3Params
    family = "simple fusion"
    optional_modalities = ("text", "image")

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        self.predictor = nn.Linear(d, d)
        nn.init.xavier_normal_(self.predictor.weight)
        # trainable feature tables (freeze=False in the toolbox) and their projections
        self.content = FeatureTables(features, self.present_modalities, d, xavier=True)
        self.scratch = {m: Scratch() for m in self.present_modalities}  # for the batch's feature rows
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Online user and item latents (LightGCN layer mean; item ego embedding added)."""
        ego = torch.cat([self.user_embedding, self.item_embedding])
        out = lightgcn_propagate(self.adj, ego, self.hp.n_layers)
        return out[: self.n_users], out[self.n_users :] + self.item_embedding

    def modal_latents(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Modal latents of all items, or of the rows ``items`` only."""

        def rows(m: str) -> torch.Tensor:
            table = self.content.tables[m]
            return table if items is None else GatherRows.apply(table, items, self.scratch[m])

        return {m: self.content.projections[m](rows(m)) for m in self.present_modalities}

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout-perturbed, gradient-free copy of a latent (always perturbed, as in the toolbox)."""
        with torch.no_grad():
            return F.dropout(x.detach(), p=self.hp.dropout, training=True)

    def target_noise(self, rows: int) -> torch.Tensor:
        """The factor :meth:`targets` multiplies a ``rows x d`` latent by: ``dropout(ones)``.

        It makes the same random draw as :meth:`targets` on a tensor of that shape, so a batch can
        perturb only the rows it reads, ``x[r] * noise[r]``, and get :meth:`targets`' values.
        """
        return self.targets(self.user_embedding.new_ones(rows, self.embedding_size))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_h, item_h = self.propagate()
        # noise for the full tables, drawn in the toolbox's order (users, items, then each modality)
        user_noise, item_noise = self.target_noise(self.n_users), self.target_noise(self.n_items)
        modal_noise = {m: self.target_noise(self.n_items) for m in self.present_modalities}
        # modal latents are per item: computed for the batch's distinct positive items only
        items, item_at = torch.unique(pos, return_inverse=True)
        modal_h = self.modal_latents(items)
        user_batch, item_batch = user_h[users], item_h[pos]
        item_t_batch = item_batch.detach() * item_noise[pos]
        id_loss = alignment_loss(self.predictor(user_batch), item_t_batch) + alignment_loss(
            self.predictor(item_batch), user_batch.detach() * user_noise[users]
        )
        modal_loss = user_h.new_zeros(())
        for m, h in modal_h.items():
            online = self.predictor(h)[item_at]
            target = (h.detach() * modal_noise[m][items])[item_at]
            modal_loss = modal_loss + alignment_loss(online, item_t_batch) + alignment_loss(online, target)
        return id_loss + self.hp.reg_weight * emb_norm_loss(user_h, item_h) + self.hp.cl_weight * modal_loss

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_h, item_h = self.propagate()
        return self.predictor(user_h), self.predictor(item_h)
