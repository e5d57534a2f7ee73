"""Full-ranking evaluation: every item scored, the user's training items masked, top-K metrics.

The model's full propagation runs once per evaluation pass (``model.representations()``);
scoring then proceeds in user batches. Only training items are masked, also when testing
(validation items stay rankable), as in the study's toolbox.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import SplitData
from ..models.base import Recommender
from .metrics import per_user_metrics


@dataclass
class EvalResult:
    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]


class Evaluator:
    def __init__(self, data: SplitData, label: int, ks: tuple[int, ...] = (5, 10, 20, 50),
                 batch_size: int = 4096, device: torch.device | str = "cpu") -> None:
        target = data.matrix(label)
        self.users = np.flatnonzero(np.diff(target.indptr))
        self.ks = tuple(sorted(ks))
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.n_items = data.n_items
        self.train: sp.csr_matrix = data.train_matrix
        coo = target.tocoo()
        self.target_keys = torch.as_tensor(np.sort(coo.row.astype(np.int64) * data.n_items + coo.col), device=self.device)
        self.n_relevant = torch.as_tensor(np.diff(target.indptr)[self.users], device=self.device)

    @torch.no_grad()
    def evaluate(self, model: Recommender) -> EvalResult:
        was_training = model.training
        model.eval()
        reps = model.representations()
        top = torch.cat([self._top_items(model, reps, s) for s in range(0, self.users.size, self.batch_size)])
        model.train(was_training)
        users = torch.as_tensor(self.users, device=self.device)
        keys = users.unsqueeze(1) * self.n_items + top
        pos = torch.searchsorted(self.target_keys, keys).clamp_max(self.target_keys.numel() - 1)
        hits = self.target_keys[pos] == keys
        if hits.shape[1] < self.ks[-1]:  # catalogues smaller than the deepest cut-off
            hits = torch.nn.functional.pad(hits, (0, self.ks[-1] - hits.shape[1]))
        per_user = per_user_metrics(hits, self.n_relevant, self.ks)
        metrics = {name: float(values.mean()) for name, values in per_user.items()}
        return EvalResult(metrics, self.users, {k: v.cpu().numpy() for k, v in per_user.items()})

    def _top_items(self, model: Recommender, reps, start: int) -> torch.Tensor:
        batch = self.users[start:start + self.batch_size]
        scores = model.score(torch.as_tensor(batch, device=self.device), reps)
        mask = self.train[batch].tocoo()
        rows = torch.as_tensor(mask.row, device=self.device, dtype=torch.long)
        cols = torch.as_tensor(mask.col, device=self.device, dtype=torch.long)
        scores[rows, cols] = -torch.inf
        return torch.topk(scores, k=min(self.ks[-1], self.n_items), dim=1).indices
