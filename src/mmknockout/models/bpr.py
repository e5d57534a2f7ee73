"""BPR matrix factorisation, the feature-free reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import id_tables
from .losses import bpr_loss, emb_norm_loss
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class BPRParams(HyperParams):
    """BPR's hyper-parameters (config/models/BPR.yaml)."""

    reg_weight: float = hp(doc="weight of the EmbLoss regulariser", ge=0)


class BPR(Recommender):
    r"""Matrix factorisation trained with BPR (Rendle et al., UAI 2009, https://arxiv.org/abs/1205.2618).

    Score :math:`\hat y_{ui} = e_u^\top e_i`; loss
    :math:`-\overline{\log\sigma(\hat y_{ui} - \hat y_{uj})} + \lambda\,\mathrm{EmbLoss}(e_u, e_i, e_j)`.

    Args (:class:`BPRParams`): ``embedding_size`` (64), ``reg_weight`` (:math:`\lambda`).
    """

    Params = BPRParams
    family = "no features"
    modalities = ()

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        self.user_embedding, self.item_embedding = id_tables(
            self.n_users, self.n_items, self.embedding_size, normal=True
        )

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        u, i, j = (
            self.user_embedding.index_select(0, users),
            self.item_embedding.index_select(0, pos),
            self.item_embedding.index_select(0, neg),
        )
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.hp.reg_weight * emb_norm_loss(u, i, j)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding, self.item_embedding
