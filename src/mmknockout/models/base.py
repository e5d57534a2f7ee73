"""The interface every recommender implements, and its method vocabulary.

Life cycle, driven by :mod:`mmknockout.train.trainer`:

1. ``Model(data, features, params)`` validates ``params`` into ``self.hp`` (the model's
   :attr:`Recommender.Params` dataclass, :mod:`.params`), then builds parameters and every fixed
   graph (on CPU; the trainer then calls ``.to(device)``).
2. Each epoch: ``on_epoch_start(epoch)`` (per-epoch graph sampling), then ``loss(users, pos,
   neg)`` per mini-batch.
3. Each evaluation: ``representations()`` runs the full propagation once, in eval mode and
   without gradients, and ``score(users, reps)`` ranks all items for a batch of users from it.
   Nothing computed in a training batch is reused for scoring.

Method names, the same in every model:

* ``propagate(...)`` -- the model's forward computation over its graphs, giving its node tables
  (users, items, and whatever views the loss needs). Models whose row-wise tail can be limited
  to a batch take ``rows`` (all rows when None). Recommenders never override ``forward``; the
  ``nn.Module`` blocks inside a model (one modality's branch, a gate) use ``forward``.
* ``representations()`` -- the final (user, item) tables used for scoring.
* ``loss(users, pos, neg)`` -- the training objective of one batch; ``regulariser(...)`` -- its
  penalty term where a model has one.
* ``on_epoch_start(epoch)`` -- per-epoch sampling.

A model is registered by defining a subclass with a non-empty :attr:`Recommender.family` in a
module of this package (:mod:`.registry` scans it); its yaml lives in ``config/models/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.dataset import SplitData
from ..errors import InputError
from .params import HyperParams, OptimiserParams

Features = Mapping[str, torch.Tensor]  # "text" -> [n_items, d_t], "image" -> [n_items, d_v]


class Recommender(nn.Module):
    """Base class: holds sizes, validated hyper-parameters and the feature matrices a model asked for."""

    #: the model's hyper-parameters (a frozen dataclass; see :mod:`.params`)
    Params: ClassVar[type[HyperParams]] = HyperParams
    #: the study's model family (Fig. 1 grouping); a class with a family is a registered model
    family: ClassVar[str] = ""
    #: modalities the model reads; () for collaborative-filtering baselines
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    #: modalities the model can run without (that branch removed); at least one of ``modalities``
    #: must always be given
    optional_modalities: ClassVar[tuple[str, ...]] = ()
    #: auxiliary graphs the model needs from the dataset ("user_graph", "item_graph")
    requires: ClassVar[tuple[str, ...]] = ()
    #: fitted once when built, without a loss or epochs (:class:`.knn.ClosedFormRecommender`)
    closed_form: ClassVar[bool] = False

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.hp = self.Params.from_mapping(type(self).__name__, params, ignore=OptimiserParams.KEYS)
        self.embedding_size = self.hp.embedding_size
        #: the modalities this instance reads, in ``modalities`` order
        self.present_modalities = tuple(m for m in self.modalities if features.get(m) is not None)
        problem = modality_problem(type(self), self.present_modalities)
        if problem:
            raise InputError(f"{type(self).__name__} {problem}")
        for name in self.present_modalities:
            if features[name].shape[0] != data.n_items:
                raise InputError(
                    f"{name} features have {features[name].shape[0]} rows but the dataset has {data.n_items} items"
                )
        for graph in self.requires:
            if getattr(data, graph) is None:
                raise InputError(f"{type(self).__name__} needs the dataset's {graph.replace('_', '-')}")

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for per-epoch sampling (edge dropout, neighbour sampling); default: nothing."""

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (user, item) representations from a full propagation."""
        raise NotImplementedError

    def score(
        self, users: torch.Tensor, reps: tuple[torch.Tensor, ...], out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores [len(users), n_items]; default: dot product of the representations. The evaluator
        passes ``out``, a reused block of that shape, to write them into (an override may ignore it)."""
        user_reps, item_reps = reps[0], reps[1]
        return torch.mm(user_reps.index_select(0, users), item_reps.T, out=out)


def modality_problem(cls: type[Recommender], present: Iterable[str]) -> str | None:
    """Why ``cls`` cannot run on the modalities ``present`` (a phrase after the model's name), or None."""
    given = set(present)
    missing = [m for m in cls.modalities if m not in given]
    if not cls.modalities or not missing:
        return None
    refused = [m for m in missing if m not in cls.optional_modalities]
    if refused:
        return f"cannot run without {refused[0]} features (missing slot: {refused[0]})"
    if len(missing) == len(cls.modalities):
        return f"needs {' or '.join(cls.modalities)} features, but both are missing"
    return None


class StackedTableRecommender(Recommender):
    """A model whose ``propagate()`` returns one (n_users + n_items) x d table, trained with BPR
    plus the model's ``regulariser(users, item_nodes)`` (item nodes are offset by ``n_users``)."""

    def propagate(self) -> torch.Tensor:
        raise NotImplementedError

    def regulariser(self, users: torch.Tensor, item_nodes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        from .losses import bpr_loss

        rep = self.propagate()
        pos_nodes, neg_nodes = pos + self.n_users, neg + self.n_users
        # one gather: its backward fills one zero table instead of three
        u, i, j = rep.index_select(0, torch.cat([users, pos_nodes, neg_nodes])).split(
            [users.numel(), pos.numel(), neg.numel()]
        )
        return bpr_loss((u * i).sum(1), (u * j).sum(1)) + self.regulariser(users, torch.cat([pos_nodes, neg_nodes]))

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        rep = self.propagate()
        return rep[: self.n_users], rep[self.n_users :]


def unique_items(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct items of a batch and the positions of ``pos`` and ``neg`` in them.

    Per-item work (projecting features) then runs once per distinct item: ``f(items)[pos_at]``.
    """
    items, index = torch.unique(torch.cat([pos, neg]), return_inverse=True)
    return items, index[: pos.numel()], index[pos.numel() :]
