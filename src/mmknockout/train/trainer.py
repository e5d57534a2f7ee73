"""Training with early stopping on a validation metric (PROTOCOL sec 4.1-4.3).

Per epoch: shuffle the training pairs, draw one negative per pair, Adam steps on mini-batches,
step the learning-rate schedule lr * a ** (epoch / b), then evaluate validation (and test when
validation improved). Early stopping keeps the epoch with the best validation metric (rounded to
4 decimals, strict improvement, as the toolbox) and stops after ``patience + 1`` evaluations
without improvement (``EarlyStopping``). A NaN/inf loss stops training and marks the run
diverged; the best epoch so far (if any) is kept. ``TrainResult.stop_reason`` says why training
ended: ``"early_stopping"``, ``"epoch_cap"`` or ``"diverged"``.
"""

from __future__ import annotations

import ctypes
import math
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.dataset import TEST, VALID, SplitData
from ..device import resolve_device
from ..errors import InputError
from ..models.base import Features, Recommender
from .adam import ExponentialSchedule, FusedAdam
from .evaluator import EvalResult, Evaluator, representations
from .metrics import EVALUATION_MODES
from .sampler import NegativeSampler

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters


@dataclass
class TrainConfig:
    epochs: int = 1000
    patience: int = 20
    batch_size: int = 2048
    eval_batch_size: int = 4096
    valid_metric: str = "NDCG@5"
    topk: tuple[int, ...] = (5, 10, 20, 50)
    decimals: int = 4
    seed: int = 999
    device: str = "cpu"
    evaluation: str = "toolbox"  # toolbox | elliot (see .metrics)
    relevance_threshold: float = 4.0  # elliot: the least rating of a relevant item

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"training: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.topk = tuple(cfg.topk)
        if cfg.evaluation not in EVALUATION_MODES:
            raise InputError(f"training.evaluation must be one of {list(EVALUATION_MODES)}, got {cfg.evaluation!r}")
        metric, _, k = cfg.valid_metric.partition("@")
        if not k.isdigit() or int(k) not in cfg.topk:
            raise InputError(
                f"training.valid_metric '{cfg.valid_metric}' must be <Metric>@K with K in topk {list(cfg.topk)}"
            )
        return cfg


STOP_EARLY, STOP_EPOCH_CAP, STOP_DIVERGED = "early_stopping", "epoch_cap", "diverged"
STOP_CLOSED_FORM = "closed_form"  # fitted once when built, evaluated once


@dataclass
class EarlyStopping:
    """The stopping rule: strict improvement of the rounded metric, stop after ``patience + 1`` misses."""

    patience: int
    decimals: int = 4
    best: float = -math.inf
    best_epoch: int | None = None
    last: float = math.nan
    stale: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record ``epoch``'s metric; True when it strictly improves on the best so far (rounded)."""
        self.last = round(value, self.decimals)
        if self.last > self.best:
            self.best, self.best_epoch, self.stale = self.last, epoch, 0
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.stale > self.patience


@dataclass
class TrainResult:
    best_epoch: int | None
    epochs_run: int
    diverged: bool
    diverged_epoch: int | None
    valid: dict[str, float]
    test: dict[str, float]
    test_per_user: EvalResult | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_train: float = 0.0
    seconds_eval: float = 0.0
    stop_reason: str = STOP_EPOCH_CAP
    stop_epoch: int | None = None

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("test_per_user")
        out.pop("history")
        return out


def keep_freed_memory() -> None:
    """Serve large CPU tensors from the reusable heap instead of fresh ``mmap`` calls (glibc only).

    Every batch allocates gradients as large as the biggest tables (115 MB for a trainable
    7,050 x 4,096 image table); glibc maps blocks above 32 MB afresh each time and unmaps them on
    free, so every batch pays page faults on the whole block. With mmap off and trimming disabled
    the freed blocks are reused; the peak memory is unchanged.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: keep the allocator's defaults
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def make_optimizer(model: Recommender, params: Mapping[str, Any]) -> tuple[FusedAdam, ExponentialSchedule]:
    # the fused kernel does Adam's update in one pass over each parameter (several times faster
    # on the large embedding and feature tables); same update rule as the default implementation
    from ..models.params import OptimiserParams

    settings = OptimiserParams.of(type(model).__name__, params)
    opt = FusedAdam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    return opt, ExponentialSchedule(opt, *settings.lr_scheduler)


def fit(
    model_cls: type[Recommender],
    data: SplitData,
    features: Features,
    params: Mapping[str, Any],
    cfg: TrainConfig,
    progress: bool = False,
) -> TrainResult:
    device = resolve_device(cfg.device)
    keep_freed_memory()
    seed_everything(cfg.seed)
    model = model_cls(data, features, params).to(device)
    opt, sched = make_optimizer(model, params)
    sampler = NegativeSampler(data, seed=cfg.seed)
    valid_eval, test_eval = _evaluator(data, VALID, cfg, device), _evaluator(data, TEST, cfg, device)

    result = TrainResult(None, 0, False, None, {}, {}, None)
    stopper = EarlyStopping(cfg.patience, cfg.decimals)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        loss = _train_epoch(model, sampler, opt, epoch, cfg.batch_size, device)
        result.seconds_train += time.perf_counter() - t0
        result.epochs_run, result.stop_epoch = epoch + 1, epoch
        if not math.isfinite(loss):
            result.diverged, result.diverged_epoch, result.stop_reason = True, epoch, STOP_DIVERGED
            result.history.append({"epoch": epoch, "loss": loss})
            break
        sched.step()
        t0 = time.perf_counter()
        reps = representations(model)  # one propagation serves validation and test
        valid = valid_eval.evaluate(model, reps)
        improved = stopper.update(epoch, valid.metrics[cfg.valid_metric])
        if improved:
            test = test_eval.evaluate(model, reps)
            result.best_epoch, result.valid = epoch, valid.metrics
            result.test, result.test_per_user = test.metrics, test
        result.seconds_eval += time.perf_counter() - t0
        result.history.append(
            {
                "epoch": epoch,
                "loss": loss,
                f"valid_{cfg.valid_metric}": valid.metrics[cfg.valid_metric],
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
            }
        )
        if progress:
            mark = " *" if improved else ""
            print(f"epoch {epoch:4d} loss {loss:.5f} valid {cfg.valid_metric} {stopper.last:.4f}{mark}", flush=True)
        if stopper.should_stop:
            result.stop_reason = STOP_EARLY
            break
    return result


def _evaluator(data: SplitData, label: int, cfg: TrainConfig, device: torch.device) -> Evaluator:
    return Evaluator(data, label, cfg.topk, cfg.eval_batch_size, device, cfg.evaluation, cfg.relevance_threshold)


def fit_closed_form(
    model_cls: type[Recommender],
    data: SplitData,
    features: Features,
    params: Mapping[str, Any],
    cfg: TrainConfig,
) -> TrainResult:
    """Fit a closed-form model once (building it fits it), then evaluate validation and test once.

    The record has the same fields as an epoch-trained run: ``best_epoch`` 0, ``epochs_run`` 0 and
    ``stop_reason`` ``"closed_form"``; ``seconds.train`` is the fit.
    """
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    model = model_cls(data, features, params)
    seconds_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    valid = _evaluator(data, VALID, cfg, device).evaluate(model, ())
    test = _evaluator(data, TEST, cfg, device).evaluate(model, ())
    seconds_eval = time.perf_counter() - t0
    history = [{"epoch": 0, f"valid_{cfg.valid_metric}": valid.metrics[cfg.valid_metric], "seconds": seconds_eval}]
    return TrainResult(
        best_epoch=0,
        epochs_run=0,
        diverged=False,
        diverged_epoch=None,
        valid=valid.metrics,
        test=test.metrics,
        test_per_user=test,
        history=history,
        seconds_train=seconds_train,
        seconds_eval=seconds_eval,
        stop_reason=STOP_CLOSED_FORM,
    )


def _train_epoch(
    model: Recommender,
    sampler: NegativeSampler,
    opt: FusedAdam,
    epoch: int,
    batch_size: int,
    device: torch.device,
) -> float:
    model.train()
    model.on_epoch_start(epoch)
    total, n = torch.zeros((), device=device), 0
    for users, pos, neg in sampler.epoch(batch_size, device):
        loss = model.loss(users, pos, neg)
        if not torch.isfinite(loss):
            return float("nan")
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.detach()
        n += 1
    return float(total) / max(n, 1)
