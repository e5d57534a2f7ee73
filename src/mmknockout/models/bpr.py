"""BPR matrix factorisation, the feature-free reference."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .losses import bpr_loss, emb_norm_loss


class BPR(Recommender):
    r"""Matrix factorisation trained with BPR (Rendle et al., UAI 2009, https://arxiv.org/abs/1205.2618).

    Score :math:`\hat y_{ui} = e_u^\top e_i`; loss
    :math:`-\overline{\log\sigma(\hat y_{ui} - \hat y_{uj})} + \lambda\,\mathrm{EmbLoss}(e_u, e_i, e_j)`.

    Params: ``embedding_size`` (64), ``reg_weight`` (:math:`\lambda`).
    """

    modalities = ()

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        self.reg_weight = float(self.param("reg_weight"))
        self.user_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_users, self.embedding_size)))
        self.item_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_items, self.embedding_size)))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        u, i, j = self.user_embedding.index_select(0, users), self.item_embedding.index_select(0, pos), self.item_embedding.index_select(0, neg)
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.reg_weight * emb_norm_loss(u, i, j)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding, self.item_embedding
