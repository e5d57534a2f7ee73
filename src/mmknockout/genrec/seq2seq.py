"""The seq2seq recommender over semantic-ID tokens: a T5 encoder-decoder, trained in steps.

Training runs in stages (MGR-LF++: alignment pre-training, then fine-tuning the same weights on
next-item examples; the others: next-item examples only). Each stage has its own AdamW optimiser and
a linear warm-up / linear decay schedule; batch ``i`` of a stage is a slice of the permutation of its
examples drawn for the epoch ``i`` falls in (seeded by seed, stage and epoch), so a run killed after a
checkpoint resumes with exactly the batches it would have seen. In the next-item stage the model is
evaluated on validation every ``eval_every`` steps and at the end; the best state is kept.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..io import atomic_path
from .tokens import IGNORE, PAD


@dataclass(frozen=True)
class T5Settings:
    """A T5 built from scratch (TIGER's size by default)."""

    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    dropout: float = 0.1


def build_t5(vocab_size: int, s: T5Settings, seed: int) -> torch.nn.Module:
    """A randomly initialised ``T5ForConditionalGeneration`` over ``vocab_size`` tokens (pad 0, eos 1)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=s.d_model,
        d_kv=s.d_kv,
        d_ff=s.d_ff,
        num_layers=s.num_layers,
        num_decoder_layers=s.num_layers,
        num_heads=s.num_heads,
        dropout_rate=s.dropout,
        feed_forward_proj="relu",
        pad_token_id=PAD,
        eos_token_id=1,
        decoder_start_token_id=PAD,
        tie_word_embeddings=True,
    )
    return T5ForConditionalGeneration(config)


@dataclass(frozen=True)
class Stage:
    """One training stage: encoder inputs [n, S] (left-padded with PAD), labels [n, T] (IGNORE-padded)."""

    name: str
    inputs: np.ndarray
    labels: np.ndarray
    steps: int
    evaluate: bool  # validation during this stage (the next-item stage)


@dataclass(frozen=True)
class FitSettings:
    learning_rate: float
    weight_decay: float
    batch_size: int
    warmup_steps: int
    eval_every: int
    checkpoint_every: int
    seed: int
    valid_metric: str


@dataclass
class FitResult:
    best: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    steps_run: int = 0
    evaluations: int = 0
    diverged: bool = False
    resumed_from: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_train: float = 0.0
    seconds_eval: float = 0.0


def batch_indices(n: int, batch_size: int, step: int, seed: int, stage: int) -> np.ndarray:
    """The examples of batch ``step`` of a stage: a slice of the permutation drawn for its epoch."""
    per_epoch = math.ceil(n / batch_size)
    epoch, j = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, stage, epoch]).permutation(n)
    return perm[j * batch_size : (j + 1) * batch_size]


def trim_padding(inputs: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are padding in every row of a left-padded batch."""
    used = (inputs != PAD).any(dim=0)
    first = int(used.to(torch.int8).argmax()) if bool(used.any()) else inputs.shape[1] - 1
    return inputs[:, first:]


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def fit(
    model: torch.nn.Module,
    stages: list[Stage],
    s: FitSettings,
    validate: Callable[[torch.nn.Module], dict[str, float]],
    device: torch.device,
    checkpoint: str | Path | None = None,
    fingerprint: str = "",
    progress: bool = False,
) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train ``model`` through ``stages``; returns the result and the best state dict (the last one
    when no stage evaluates). With ``checkpoint`` the run saves every ``checkpoint_every`` steps and
    resumes from a checkpoint of the same ``fingerprint``."""
    model.to(device)
    result, best_state, start = FitResult(), None, (0, 0)
    saved = _load(checkpoint, fingerprint, device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        result, best_state, start = saved["result"], saved["best_state"], (saved["stage"], saved["step"])
        result.resumed_from = sum(st.steps for st in stages[: start[0]]) + start[1]
        torch.set_rng_state(saved["rng"].cpu())
    for si, stage in enumerate(stages):
        if si < start[0]:
            continue
        opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(min(s.warmup_steps, stage.steps), stage.steps))
        first = start[1] if si == start[0] else 0
        if saved is not None and si == start[0] and first > 0:  # at a stage boundary the stage starts afresh
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
        inputs, labels = torch.as_tensor(stage.inputs), torch.as_tensor(stage.labels)
        bar = tqdm(
            total=stage.steps, initial=first, desc=stage.name, file=sys.stderr, disable=not progress, mininterval=5
        )
        for step in range(first, stage.steps):
            model.train()
            t0 = time.perf_counter()
            idx = torch.as_tensor(batch_indices(len(inputs), s.batch_size, step, s.seed, si))
            x = trim_padding(inputs[idx]).to(device)
            loss = model(input_ids=x, attention_mask=x != PAD, labels=labels[idx].to(device)).loss
            value = float(loss.detach())
            if not math.isfinite(value):
                result.diverged = True
                result.history.append({"stage": stage.name, "step": step, "loss": value})
                bar.close()
                return result, best_state or model.state_dict()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            result.seconds_train += time.perf_counter() - t0
            result.steps_run += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            done = step + 1
            row: dict[str, Any] = {"stage": stage.name, "step": done, "loss": value, "lr": sched.get_last_lr()[0]}
            if stage.evaluate and (done % s.eval_every == 0 or done == stage.steps):
                t0 = time.perf_counter()
                metrics = validate(model)
                result.seconds_eval += time.perf_counter() - t0
                result.evaluations += 1
                value = metrics[s.valid_metric]
                row[f"valid_{s.valid_metric}"] = value
                if result.best_step is None or value > result.best[s.valid_metric]:
                    result.best, result.best_step = metrics, done
                    best_state = copy.deepcopy(model.state_dict())
            if done % 100 == 0 or done == stage.steps or f"valid_{s.valid_metric}" in row:
                result.history.append(row)
            if checkpoint is not None and (done % s.checkpoint_every == 0 or done == stage.steps):
                nxt = (si, done) if done < stage.steps else (si + 1, 0)
                _save(checkpoint, fingerprint, model, opt, sched, nxt, result, best_state)
        bar.close()
    return result, best_state if best_state is not None else model.state_dict()


def _save(path, fingerprint, model, opt, sched, position, result, best_state) -> None:
    state = {
        "fingerprint": fingerprint,
        "stage": position[0],
        "step": position[1],
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": torch.get_rng_state(),
        "result": asdict(result),
        "best_state": best_state,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load(path: str | Path | None, fingerprint: str, device: torch.device) -> dict | None:
    """The checkpoint at ``path`` when it belongs to this run (same fingerprint), else None."""
    if path is None or not Path(path).is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)  # tensors and plain values only
    if state.get("fingerprint") != fingerprint:
        return None
    state["result"] = FitResult(**state["result"])
    return state


def labels_for(targets: np.ndarray) -> np.ndarray:
    """Decoder labels: the target tokens (a fixed length per stage, so no end token is needed)."""
    return np.where(targets < 0, IGNORE, targets).astype(np.int64)
