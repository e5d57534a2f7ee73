"""The early-stopping rule on scripted metric sequences, alone and inside ``fit``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmknockout.data.dataset import VALID
from mmknockout.models.bpr import BPR
from mmknockout.run import train_run
from mmknockout.train import trainer
from mmknockout.train.evaluator import EvalResult
from mmknockout.train.trainer import EarlyStopping, TrainConfig, fit

import model_kit


def run_rule(scores: list[float], patience: int, decimals: int = 4) -> tuple[list[bool], int, int | None]:
    """Feed ``scores`` epoch by epoch: (improved flags, epochs evaluated before stopping, best epoch)."""
    stopper = EarlyStopping(patience, decimals)
    flags = []
    for epoch, score in enumerate(scores):
        flags.append(stopper.update(epoch, score))
        if stopper.should_stop:
            break
    return flags, len(flags), stopper.best_epoch


def test_strict_improvement_keeps_the_first_best_epoch():
    flags, evaluated, best = run_rule([0.1, 0.3, 0.3, 0.2, 0.25], patience=10)
    assert flags == [True, True, False, False, False]
    assert evaluated == 5 and best == 1


def test_stops_after_patience_plus_one_evaluations_without_improvement():
    flags, evaluated, best = run_rule([0.5, 0.4, 0.4, 0.4, 0.4, 0.9], patience=2)
    assert flags == [True, False, False, False]
    assert evaluated == 4 and best == 0


def test_patience_zero_stops_at_the_first_miss():
    flags, evaluated, best = run_rule([0.1, 0.2, 0.2, 0.9], patience=0)
    assert flags == [True, True, False] and evaluated == 3 and best == 1


def test_ties_after_rounding_are_not_improvements():
    # 0.12344 and 0.12341 both round to 0.1234; 0.12346 rounds to 0.1235
    flags, _, best = run_rule([0.12344, 0.12341, 0.12346], patience=5)
    assert flags == [True, False, True] and best == 2
    flags, _, best = run_rule([0.12344, 0.12346], patience=5, decimals=3)
    assert flags == [True, False] and best == 0


def test_improvement_on_the_last_allowed_epoch_resets_patience():
    # patience 2: two misses are allowed; the third evaluation after the best improves just in time
    flags, evaluated, best = run_rule([0.2, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1, 0.9], patience=2)
    assert flags == [True, False, False, True, False, False, False]
    assert evaluated == 7 and best == 3


def test_plateau_from_the_start_never_beats_the_first_epoch():
    flags, evaluated, best = run_rule([0.0] * 10, patience=3)
    assert flags == [True, False, False, False, False] and evaluated == 5 and best == 0


def test_nan_metric_is_never_an_improvement():
    stopper = EarlyStopping(patience=5)
    assert not stopper.update(0, math.nan)
    assert stopper.best_epoch is None and stopper.stale == 1
    assert stopper.update(1, 0.0) and stopper.best_epoch == 1


class ScriptedEvaluator:
    """Stands in for ``Evaluator``: validation returns the next scripted score; test tags the epoch."""

    script: list[float] = []
    calls: dict[int, int] = {}

    def __init__(self, data, label, ks, batch_size, device, *evaluation) -> None:
        self.label = label

    def evaluate(self, model, reps=None) -> EvalResult:
        n = self.calls.get(self.label, 0)
        self.calls[self.label] = n + 1
        users = np.arange(2)
        if self.label == VALID:
            return EvalResult({"NDCG@5": self.script[n]}, users, {})
        return EvalResult({"NDCG@5": float(n)}, users, {"NDCG@5": np.full(2, float(n))})


class NaNFromEpoch(BPR):
    nan_from = 10**9

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def loss(self, users, pos, neg):
        loss = super().loss(users, pos, neg)
        return loss * math.nan if self.epoch >= self.nan_from else loss


def scripted_fit(monkeypatch, script: list[float], epochs: int, patience: int, nan_from: int | None = None):
    monkeypatch.setattr(trainer, "Evaluator", ScriptedEvaluator)
    monkeypatch.setattr(ScriptedEvaluator, "script", script)
    monkeypatch.setattr(ScriptedEvaluator, "calls", {})
    model_cls = type("Scripted", (NaNFromEpoch,), {"nan_from": 10**9 if nan_from is None else nan_from})
    cfg = TrainConfig(epochs=epochs, patience=patience, topk=(5,), seed=1)
    return fit(model_cls, model_kit.tiny_split(), {}, {"reg_weight": 0.0}, cfg)


def test_fit_stops_early_and_keeps_the_best_epoch(monkeypatch):
    result = scripted_fit(monkeypatch, [0.1, 0.3, 0.2, 0.3, 0.1, 0.9], epochs=10, patience=2)
    assert result.stop_reason == "early_stopping" and result.stop_epoch == 4
    assert result.epochs_run == 5 and result.best_epoch == 1 and not result.diverged
    assert result.valid == {"NDCG@5": 0.3}
    assert result.test == {"NDCG@5": 1.0}  # the second test evaluation: test runs only when validation improved
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4]


def test_fit_reports_the_epoch_cap(monkeypatch):
    result = scripted_fit(monkeypatch, [0.1, 0.2, 0.3], epochs=3, patience=0)
    assert result.stop_reason == "epoch_cap" and result.stop_epoch == 2
    assert result.epochs_run == 3 and result.best_epoch == 2


def test_fit_reports_divergence_and_keeps_the_best_epoch_so_far(monkeypatch):
    result = scripted_fit(monkeypatch, [0.2, 0.1, 0.5], epochs=10, patience=5, nan_from=2)
    assert result.stop_reason == "diverged" and result.stop_epoch == 2
    assert result.diverged and result.diverged_epoch == 2 and result.epochs_run == 3
    assert result.best_epoch == 0 and result.valid == {"NDCG@5": 0.2}
    assert math.isnan(result.history[-1]["loss"])


def test_summary_keeps_every_field_and_adds_the_stop_reason(monkeypatch):
    summary = scripted_fit(monkeypatch, [0.1], epochs=1, patience=0).summary()
    expected = {
        "best_epoch",
        "epochs_run",
        "diverged",
        "diverged_epoch",
        "valid",
        "test",
        "seconds_train",
        "seconds_eval",
        "stop_reason",
        "stop_epoch",
    }
    assert set(summary) == expected
    assert summary["stop_reason"] == "epoch_cap" and summary["stop_epoch"] == 0


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_rule_matches_a_counted_reference_on_random_sequences(patience):
    rng = np.random.default_rng(patience)
    for _ in range(50):
        scores = rng.choice([0.1, 0.2, 0.3, 0.30001], size=12).tolist()
        _, evaluated, best = run_rule(scores, patience)
        rounded = [round(s, 4) for s in scores]
        # reference: the first maximum over the evaluated prefix, and the stop comes exactly
        # patience + 1 epochs after the last improvement (or at the end of the sequence)
        prefix = rounded[:evaluated]
        assert best == prefix.index(max(prefix))
        assert evaluated == min(len(scores), best + patience + 2)


def test_run_record_states_why_training_stopped(tmp_path):
    data = model_kit.tiny_split()
    rows = zip(data.users, data.items, data.labels, strict=True)
    inter = tmp_path / "tiny.inter"
    inter.write_text(
        "userID\titemID\trating\ttimestamp\tx_label\n" + "".join(f"{u}\t{i}\t5\t1\t{x}\n" for u, i, x in rows)
    )
    spec = model_kit.run_spec("BPR", {"reg_weight": 0.0}, training={"epochs": 2, "topk": [5]})
    record = train_run(
        spec, inter=inter, features={}, user_graph=None, item_graph=None, **model_kit.run_outputs(tmp_path / "run")
    )
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["stop_reason"] == record["stop_reason"] == "epoch_cap"
    assert saved["stop_epoch"] == 1 and saved["epochs_run"] == 2 and saved["status"] == "ok"


def test_score_blocks_cut_to_the_memory_bound_give_the_same_metrics(monkeypatch):
    from mmknockout.train import evaluator

    data = model_kit.tiny_split()
    model = model_kit.build(BPR, model_kit.params("BPR"), data)
    whole = evaluator.Evaluator(data, VALID, batch_size=4096)
    monkeypatch.setattr(evaluator, "SCORE_BLOCK_BYTES", 4 * data.n_items * 3)  # three users per block
    cut = evaluator.Evaluator(data, VALID, batch_size=4096)
    assert cut.batch_size == 3 and len(cut.batches) > len(whole.batches) == 1
    a, b = whole.evaluate(model), cut.evaluate(model)
    assert a.metrics == b.metrics and all(np.array_equal(a.per_user[k], b.per_user[k]) for k in a.per_user)
