"""VBPR: visual (here: multimodal) BPR."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender, unique_items
from .blocks import xavier_table
from .losses import bpr_loss, emb_norm_loss
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class VBPRParams(HyperParams):
    """VBPR's hyper-parameters (config/models/VBPR.yaml)."""

    reg_weight: float = hp(doc="weight of the EmbLoss regulariser", ge=0)


class VBPR(Recommender):
    r"""VBPR (He & McAuley, AAAI 2016, https://arxiv.org/abs/1510.01784), as configured in MMRec.

    The item's raw content is :math:`f_i = [t_i; v_i]` (text first). Its representation is
    :math:`e_i = [\gamma_i;\ W f_i + b]` (a free ID half and a linear content half, each ``d``),
    the user's is a free :math:`e_u \in \mathbb{R}^{2d}`, and :math:`\hat y_{ui} = e_u^\top e_i`.
    Loss: BPR plus ``reg_weight`` times EmbLoss of the batch's user, positive and negative
    representations. As in the toolbox, the paper's global and visual bias terms are omitted and
    the raw features are fixed (only :math:`W, b` learn).

    One slot (as MMRec with ``v_feat`` or ``t_feat`` None): :math:`f_i` is the present modality's
    features alone; the same holds under the ``absent`` condition.

    Knockout: with constant (or zero) features the content half is the same vector for every item,
    so it adds a per-user constant to all scores and ranking reduces to BPR on the ID half.

    Args (:class:`VBPRParams`): ``embedding_size`` (d = 64), ``reg_weight``.
    """

    Params = VBPRParams
    family = "simple fusion"
    optional_modalities = ("text", "image")

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.register_buffer("raw_features", torch.cat([features[m] for m in self.present_modalities], dim=1).float())
        self.user_embedding, self.item_embedding = xavier_table(self.n_users, 2 * d), xavier_table(self.n_items, d)
        self.item_linear = nn.Linear(self.raw_features.shape[1], d)
        nn.init.xavier_normal_(self.item_linear.weight)
        nn.init.zeros_(self.item_linear.bias)

    def item_representations(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Item representations of ``items`` (all items when None)."""
        ids = self.item_embedding if items is None else self.item_embedding.index_select(0, items)
        raw = self.raw_features if items is None else self.raw_features.index_select(0, items)
        return torch.cat([ids, self.item_linear(raw)], dim=1)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        items, pos_at, neg_at = unique_items(pos, neg)
        reps = self.item_representations(items)
        u, i, j = self.user_embedding.index_select(0, users), reps.index_select(0, pos_at), reps.index_select(0, neg_at)
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.hp.reg_weight * emb_norm_loss(u, i, j)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding, self.item_representations()
