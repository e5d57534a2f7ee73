"""One generative run (workflow step ``train_genrec``): a variant (TIGER-text/-image, MGR-EF/-LF/-LF++)
trained on the leave-one-out split over the semantic IDs of :mod:`.sids`, evaluated by constrained
beam search; writes ``metrics.json`` in the ranking runs' schema (validation and test metrics at the
best validation step), the history, per-user test metrics and the test predictions.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..arrays import load_npy
from ..data.dataset import TEST, VALID
from ..data.sequential import Sequences
from ..device import resolve_device, set_threads
from ..errors import InputError
from ..io import atomic_path, write_json, write_npz
from ..run import environment
from .beam import PrefixTrie, constrained_beam_search
from .encoding import IdEncoding, PromptEncoding
from .metrics import hits_by_part, per_user, summary
from .rqvae import dedup_digit
from .sasrec import SASRec, SASRecSettings
from .sasrec import history_inputs as sasrec_inputs
from .seq2seq import FitResult, FitSettings, Stage, T5Settings, fit, labels_for
from .tokens import PAD, VARIANTS, TokenLayout, pad_labels


def train_genrec_step(
    *,
    spec: Mapping[str, Any],
    seq_inter: str,
    metrics: str,
    history: str,
    per_user_file: str,
    predictions: str,
    checkpoint: str,
    text_codes: str | None = None,
    image_codes: str | None = None,
    fused_codes: str | None = None,
    threads: int | None = None,
) -> None:
    """Workflow step: one generative run (see :func:`train_genrec`)."""
    set_threads(threads)
    given = {"text": text_codes, "image": image_codes, "fused": fused_codes}
    train_genrec(
        spec,
        seq_inter=seq_inter,
        codes={k: load_npy(v, f"{k} semantic IDs") for k, v in given.items() if v},
        metrics=metrics,
        history=history,
        per_user_file=per_user_file,
        predictions=predictions,
        checkpoint=checkpoint,
        progress=True,
    )


def _fingerprint(spec: Mapping[str, Any], codes: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for k in sorted(codes):
        h.update(k.encode() + np.ascontiguousarray(codes[k]).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Catalogue:
    """The items a run can generate and their token sequences in the layout of a variant."""

    candidates: np.ndarray  # item ids of the split, ascending
    codes: dict[str, np.ndarray]  # block -> [n_items, levels], -1 rows for items outside the split
    layout: TokenLayout
    tokens: np.ndarray  # [n_items, item_length] layout ids, -1 rows for items outside the split

    @classmethod
    def build(cls, spec: Mapping[str, Any], codes: Mapping[str, np.ndarray], candidates: np.ndarray) -> Catalogue:
        variant = spec["variant"]
        if variant not in VARIANTS:
            raise InputError(f"unknown generative variant '{variant}'; known: {list(VARIANTS)}")
        blocks = VARIANTS[variant][0]
        missing = [b for b in blocks if b not in codes]
        if missing:
            raise InputError(f"{variant} needs the {missing} semantic IDs")
        levels = {codes[b].shape[1] for b in blocks}
        if len(levels) != 1 or candidates.max() >= min(len(codes[b]) for b in blocks):
            raise InputError(f"{variant}: the semantic IDs must have one number of levels and a row for every item")
        _, dedup = dedup_digit(np.concatenate([codes[b][candidates] for b in blocks], axis=1))
        layout = TokenLayout.of(variant, levels.pop(), spec["codebook_size"], dedup, spec["seq2seq"]["user_buckets"])
        by_item = {b: _rows_of(codes[b][candidates], candidates) for b in blocks}
        tokens = _rows_of(layout.item_tokens({b: codes[b][candidates] for b in blocks}), candidates)
        return cls(candidates, by_item, layout, tokens)

    def candidate_codes(self) -> dict[str, np.ndarray]:
        return {b: c[self.candidates] for b, c in self.codes.items()}


def _rows_of(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[max(ids) + 1, width] with row ``ids[i]`` = ``values[i]``, every other row -1."""
    out = np.full((int(ids.max()) + 1, values.shape[1]), -1, dtype=np.int64)
    out[ids] = values
    return out


def train_genrec(
    spec: Mapping[str, Any],
    *,
    seq_inter: str | Path,
    codes: Mapping[str, np.ndarray],
    metrics: str | Path,
    history: str | Path,
    per_user_file: str | Path,
    predictions: str | Path,
    checkpoint: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one variant; ``spec`` holds dataset, feature_set, variant, condition,
    params_id, params (learning_rate), seed, device, codebook_size and the study's ``seq2seq``,
    ``topk`` and ``valid_metric``."""
    started = time.time()
    seqs = Sequences.from_inter(seq_inter)
    device = resolve_device(spec["device"])
    setup = _sasrec if spec["variant"] == "SASRec" else _generative
    model, stages, generate, examples, cat = setup(spec, seqs, codes, device)
    valid_in, valid_tgt, _ = examples(VALID)
    ks = tuple(spec["topk"])
    result, best_state = fit(
        model,
        stages,
        _fit_settings(spec),
        lambda m: summary(per_user(generate(m, valid_in), valid_tgt, ks)),
        device,
        checkpoint,
        _fingerprint(spec, codes),
        progress,
    )
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    test_in, test_tgt, test_users = examples(TEST)
    test_pred = generate(model, test_in)
    test_values = per_user(test_pred, test_tgt, ks)
    parts = {**cat.codes, "whole": cat.tokens} if cat else {}
    record = {
        **_record(spec, result, cat),
        "test": summary(test_values),
        "hits_by_part": {f"{k}@5": v for k, v in hits_by_part(test_pred, test_tgt, parts, 5).items()},
        "seconds": {
            "train": result.seconds_train,
            "eval": result.seconds_eval + time.perf_counter() - t0,
            "total": time.time() - started,
            "per_epoch": result.seconds_train / max(result.evaluations, 1),
        },
        "environment": environment(str(device)),
    }
    with atomic_path(history) as tmp:
        pd.DataFrame(result.history).to_csv(tmp, index=False)
    write_npz(per_user_file, users=test_users, **test_values)
    write_npz(predictions, users=test_users, targets=test_tgt, items=test_pred)
    write_json(metrics, record)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)  # only a run that has not finished needs it
    return record


def _generative(spec: Mapping[str, Any], seqs: Sequences, codes: Mapping[str, np.ndarray], device: torch.device):
    """Model, stages, generator and example builder of a semantic-ID variant (constrained beam search)."""
    s = spec["seq2seq"]
    cat = Catalogue.build(spec, codes, np.unique(seqs.items))
    t5 = T5Settings(**{k: s[k] for k in T5Settings.__dataclass_fields__})
    enc = PromptEncoding(s["model"], cat.layout) if s["mode"] == "pretrained" else IdEncoding(cat.layout, t5)
    model_ids = enc.ids(cat.tokens)  # each item's target sequence in the model's vocabulary
    trie = PrefixTrie.build(model_ids[cat.candidates], cat.candidates, device)
    beams = max(s["beams"], *spec["topk"])

    def examples(target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hist, tgt, users = seqs.examples(target, s["max_history"])
        return enc.history_inputs(cat.tokens, hist, users), tgt, users

    def generate(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
        return _batched(
            model,
            inputs,
            s["eval_batch_size"],
            device,
            lambda x: constrained_beam_search(model, x, x != PAD, trie, beams),
        )

    return enc.model(int(spec["seed"])), _stages(spec, seqs, cat, enc, model_ids), generate, examples, cat


def _sasrec(spec: Mapping[str, Any], seqs: Sequences, codes: Mapping[str, np.ndarray], device: torch.device):
    """Model, stage, ranker and example builder of SASRec (item ids only; every item of the split ranked)."""
    s, settings = spec["seq2seq"], SASRecSettings(**spec["sasrec"])
    n_items = int(seqs.items.max()) + 1
    allowed = torch.zeros(n_items, dtype=torch.bool, device=device)
    allowed[torch.as_tensor(np.unique(seqs.items), device=device)] = True
    depth = max(spec["topk"])

    def examples(target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hist, tgt, users = seqs.examples(target, settings.max_len)
        return sasrec_inputs(hist), tgt, users

    def generate(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
        return _batched(model, inputs, s["eval_batch_size"], device, lambda x: model.rank(x, depth, allowed))

    torch.manual_seed(int(spec["seed"]))
    hist, tgt, _ = seqs.train_examples(settings.max_len)
    stage = Stage("rec", sasrec_inputs(hist), tgt[:, None], s["steps"], True)
    return SASRec(n_items, settings), [stage], generate, examples, None


def _batched(model: torch.nn.Module, inputs: np.ndarray, batch_size: int, device: torch.device, run) -> np.ndarray:
    model.eval()
    chunks = np.array_split(inputs, max(1, -(-len(inputs) // batch_size)))
    return np.concatenate([run(torch.as_tensor(c, device=device)).cpu().numpy() for c in chunks])


def _stages(
    spec: Mapping[str, Any], seqs: Sequences, cat: Catalogue, enc: IdEncoding | PromptEncoding, model_ids: np.ndarray
) -> list[Stage]:
    """MGR-LF++'s alignment stage (when it has steps), then the next-item stage."""
    s, stages = spec["seq2seq"], []
    if VARIANTS[spec["variant"]][2] and s["align_steps"]:
        inputs, targets = enc.alignment_examples(cat.candidate_codes())
        stages.append(Stage("align", inputs, pad_labels(targets, cat.layout.item_length), s["align_steps"], False))
    hist, tgt, users = seqs.train_examples(s["max_history"])
    rec = enc.history_inputs(cat.tokens, hist, users)
    return stages + [Stage("rec", rec, labels_for(model_ids[tgt]), s["steps"], True)]


def _fit_settings(spec: Mapping[str, Any]) -> FitSettings:
    s = spec["seq2seq"]
    return FitSettings(
        learning_rate=float(spec["params"]["learning_rate"]),
        weight_decay=s["weight_decay"],
        batch_size=s["batch_size"],
        warmup_steps=s["warmup_steps"],
        eval_every=s["eval_every"],
        checkpoint_every=s["checkpoint_every"],
        seed=int(spec["seed"]),
        valid_metric=spec["valid_metric"],
    )


def _record(spec: Mapping[str, Any], result: FitResult, cat: Catalogue | None) -> dict[str, Any]:
    """The run record's fields in the ranking runs' schema; an evaluation round stands for an epoch."""
    return {
        "dataset": spec["dataset"],
        "feature_set": spec["feature_set"],
        "model": spec["variant"],
        "condition": spec["condition"],
        "params_id": spec["params_id"],
        "params": dict(spec["params"]),
        "seed": int(spec["seed"]),
        "status": "diverged" if result.diverged else "ok",
        "best_epoch": result.best_step,
        "epochs_run": result.evaluations,
        "diverged": result.diverged,
        "diverged_epoch": None,
        "valid": result.best,
        "stop_reason": "diverged" if result.diverged else "step_cap",
        "stop_epoch": result.steps_run,
        "best_step": result.best_step,
        "steps_run": result.steps_run,
        "resumed_from_step": result.resumed_from,
        "semantic_ids": None
        if cat is None
        else {
            "levels": cat.layout.levels,
            "dedup_size": cat.layout.dedup_size,
            "item_length": cat.layout.item_length,
            "vocab_size": cat.layout.vocab_size,
            "items": int(len(cat.candidates)),
        },
        "training": {
            "seq2seq": dict(spec["seq2seq"]),
            **({"sasrec": dict(spec["sasrec"])} if spec["variant"] == "SASRec" else {}),
            "topk": list(spec["topk"]),
            "valid_metric": spec["valid_metric"],
            "device": spec["device"],
        },
    }
