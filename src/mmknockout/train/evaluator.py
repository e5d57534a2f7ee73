"""Full-ranking evaluation: every item scored, the user's training items masked, top-K metrics.

The model's full propagation runs once per evaluation pass (``model.representations()``);
scoring then proceeds in user batches. Only training items are masked, also when testing
(validation items stay rankable), as in the study's toolbox. ``mode="elliot"`` evaluates as Elliot
(:mod:`.metrics`): only held-out items rated at least ``threshold`` are relevant, users without one
are dropped, and nDCG is graded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import SplitData
from ..models.base import Recommender
from .metrics import elliot_per_user_metrics, ideal_gains, per_user_metrics, relevant_gains

#: most bytes of one block of scores (users x items, float32); the user batch is cut to fit, which
#: bounds the evaluation's peak memory (4,096 Baby users would take 115 MB per block) and changes no result
SCORE_BLOCK_BYTES = 2**25


@dataclass
class EvalResult:
    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]


class Evaluator:
    def __init__(
        self,
        data: SplitData,
        label: int,
        ks: tuple[int, ...] = (5, 10, 20, 50),
        batch_size: int = 4096,
        device: torch.device | str = "cpu",
        mode: str = "toolbox",
        threshold: float = 4.0,
    ) -> None:
        target = data.matrix(label) if mode == "toolbox" else relevant_gains(data.rating_matrix(label), threshold)
        self.users = np.flatnonzero(np.diff(target.indptr))
        self.ks = tuple(sorted(ks))
        self.batch_size = max(1, min(batch_size, SCORE_BLOCK_BYTES // (4 * max(data.n_items, 1))))
        self.device = torch.device(device)
        self.n_items = data.n_items
        self.train: sp.csr_matrix = data.train_matrix
        coo = target.tocoo()
        keys = coo.row.astype(np.int64) * data.n_items + coo.col
        order = np.argsort(keys)
        self.target_keys = torch.as_tensor(keys[order], device=self.device)
        #: Elliot mode: the graded gain of every target entry (in key order) and the users' ideal gains
        self.gains = self.ideal = None
        if mode != "toolbox":
            self.gains = torch.as_tensor(coo.data[order], device=self.device)
            self.ideal = torch.as_tensor(ideal_gains(target, self.users, self.ks[-1]), device=self.device)
        self.n_relevant = torch.as_tensor(np.diff(target.indptr)[self.users], device=self.device)
        self.batches = [self._batch(start) for start in range(0, self.users.size, self.batch_size)]

    def _batch(self, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, mask rows, mask cols) of one user batch; the mask is the users' training items."""
        users = self.users[start : start + self.batch_size]
        mask = self.train[users].tocoo()
        return tuple(torch.as_tensor(a, dtype=torch.long, device=self.device) for a in (users, mask.row, mask.col))

    @torch.no_grad()
    def evaluate(self, model: Recommender, reps: tuple[torch.Tensor, ...] | None = None) -> EvalResult:
        """Metrics of ``model``; ``reps`` are its representations when already computed this epoch."""
        if reps is None:
            reps = representations(model)
        # one score block reused and the top items written into one table: a fresh block per batch
        # would not reuse the previous one's memory (the heap keeps growing by a block per batch)
        k = min(self.ks[-1], self.n_items)
        top = torch.empty(self.users.size, k, dtype=torch.long, device=self.device)
        values = None  # the top scores themselves, unused; typed like the scores
        shape = (min(self.batch_size, self.users.size), self.n_items)
        # closed-form models have no representations: their scores are float32
        block = reps[0].new_empty(shape) if reps else torch.empty(shape, device=self.device)
        into = "out" in inspect.signature(model.score).parameters  # an override may not take a block
        for start, (users, mask_rows, mask_cols) in zip(
            range(0, self.users.size, self.batch_size), self.batches, strict=True
        ):
            scores = model.score(users, reps, out=block[: users.numel()]) if into else model.score(users, reps)
            scores[mask_rows, mask_cols] = -torch.inf
            rows = slice(start, start + users.numel())
            values = scores.new_empty(top.shape) if values is None else values
            torch.topk(scores, k=k, dim=1, out=(values[rows], top[rows]))
        users = torch.as_tensor(self.users, device=self.device)
        keys = users.unsqueeze(1) * self.n_items + top
        pos = torch.searchsorted(self.target_keys, keys).clamp_max(self.target_keys.numel() - 1)
        hits = self.target_keys[pos] == keys
        if self.gains is not None:
            hits = torch.where(hits, self.gains[pos], 0.0)
        if hits.shape[1] < self.ks[-1]:  # catalogues smaller than the deepest cut-off
            hits = torch.nn.functional.pad(hits, (0, self.ks[-1] - hits.shape[1]))
        if self.gains is None:
            per_user = per_user_metrics(hits, self.n_relevant, self.ks)
        else:
            per_user = elliot_per_user_metrics(hits, self.ideal, self.n_relevant, self.ks)
        metrics = {name: float(values.mean()) for name, values in per_user.items()}
        return EvalResult(metrics, self.users, {k: v.cpu().numpy() for k, v in per_user.items()})


@torch.no_grad()
def representations(model: Recommender) -> tuple[torch.Tensor, ...]:
    """The model's full propagation, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    reps = model.representations()
    model.train(was_training)
    return reps
