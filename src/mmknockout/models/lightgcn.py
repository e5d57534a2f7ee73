"""LightGCN, the feature-free graph reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import id_tables
from .graph import GraphOperator, lightgcn_propagate, normalized_adjacency
from .losses import bpr_loss, emb_norm_loss
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class LightGCNParams(HyperParams):
    """LightGCN's hyper-parameters (config/models/LightGCN.yaml)."""

    n_layers: int = hp(doc="propagation layers L", ge=0)
    reg_weight: float = hp(doc="weight of EmbLoss on the ego embeddings", ge=0)


class LightGCN(Recommender):
    r"""LightGCN (He et al., SIGIR 2020, https://arxiv.org/abs/2002.02126).

    With :math:`\tilde A = D^{-1/2} A D^{-1/2}` the normalised user-item graph and
    :math:`E^{(l+1)} = \tilde A E^{(l)}`, the representation is the layer mean
    :math:`E = \frac{1}{L+1}\sum_{l=0}^{L} E^{(l)}`; scores are dot products. Loss: BPR plus
    ``reg_weight`` times EmbLoss on the batch's ego (layer-0) embeddings.

    Args (:class:`LightGCNParams`): ``embedding_size`` (64), ``n_layers``, ``reg_weight``.
    """

    Params = LightGCNParams
    family = "no features"
    modalities = ()

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, self.embedding_size)
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding, self.item_embedding])
        out = lightgcn_propagate(self.adj, ego, self.hp.n_layers)
        return out[: self.n_users], out[self.n_users :]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_reps, item_reps = self.propagate()
        u, i, j = user_reps.index_select(0, users), item_reps.index_select(0, pos), item_reps.index_select(0, neg)
        reg = emb_norm_loss(
            self.user_embedding.index_select(0, users),
            self.item_embedding.index_select(0, pos),
            self.item_embedding.index_select(0, neg),
        )
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.hp.reg_weight * reg

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()
