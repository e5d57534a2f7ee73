"""Uniform negative sampling, vectorised (PROTOCOL sec 4.2).

Negatives are drawn uniformly from the items present in the training split, rejecting items in
the user's own training history; rejected draws are redrawn in bulk until none remain.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.dataset import SplitData
from ..errors import InputError


class NegativeSampler:
    def __init__(self, data: SplitData, seed: int) -> None:
        self.users = data.train_users
        self.items = data.train_items
        self.n_items = data.n_items
        self.candidates = np.unique(self.items)
        self.history = np.unique(self.users * self.n_items + self.items)
        self.rng = np.random.default_rng(seed)
        longest = np.bincount(self.history // self.n_items).max()
        if longest >= self.candidates.size:
            raise InputError(
                f"a user has interacted with all {self.candidates.size} training items; no negative can be sampled"
            )

    def in_history(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.minimum(np.searchsorted(self.history, keys), self.history.size - 1)
        return self.history[pos] == keys

    def negatives(self, users: np.ndarray) -> np.ndarray:
        neg = self.candidates[self.rng.integers(0, self.candidates.size, size=users.size)]
        todo = np.flatnonzero(self.in_history(users, neg))
        while todo.size:
            neg[todo] = self.candidates[self.rng.integers(0, self.candidates.size, size=todo.size)]
            todo = todo[self.in_history(users[todo], neg[todo])]
        return neg

    def epoch(self, batch_size: int, device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled (users, positives, negatives) batches covering every training pair once."""
        order = self.rng.permutation(self.users.size)
        users, pos = self.users[order], self.items[order]
        neg = self.negatives(users)
        for start in range(0, users.size, batch_size):
            sl = slice(start, start + batch_size)
            yield tuple(torch.as_tensor(a[sl], device=device) for a in (users, pos, neg))
