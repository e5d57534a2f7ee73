"""``python -m mmknockout estimate``: the study's training runs and their device time.

The runs are counted from the config's :class:`~mmknockout.plan.StudyPlan` (every grid point of
every selection key, the VBPR sweeps and the VIRAL fusion ablation). Each run costs

    start-up + setup + epochs x (train seconds per epoch + evaluation seconds per epoch)

with per-model timings taken from a measurement: finished runs' ``metrics.json`` (``--runs``: the
median seconds per epoch and per evaluation, and the median number of epochs they ran), the
benchmark's ``bench.json`` or a CSV with columns ``model, epoch_s`` and optionally ``eval_s`` and
``epochs`` (``--times``). A model without a measured number of epochs is charged ``--epochs``, or
the config's epoch cap (an upper bound, flagged). Packing ``k`` runs on one device divides the
device hours by the measured throughput gain ``--packing-gain`` (runs per hour with ``k`` at once
over runs per hour alone); it is 1 unless measured.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class ModelTiming:
    """Measured cost of one model's run: seconds per training epoch and per evaluation, epochs run,
    and the seconds of a run outside its epochs (loading, model build, writing the record)."""

    epoch_s: float
    eval_s: float = 0.0
    epochs: float | None = None
    setup_s: float = 0.0


def study_runs(config: Mapping[str, Any]) -> dict[str, str]:
    """metrics.json path -> model of every training run a validated config asks for."""
    from .. import paths
    from ..plan import StudyPlan

    plan = StudyPlan(config)
    runs = {f: key["model"] for key in plan.selection_keys() for f in plan.run_files(paths.METRICS, **key)}
    sweep_models = [r.model for _ in config["seeds"] for r in plan.sweeps]  # sweep_records' order
    runs.update(zip(plan.sweep_records(), sweep_models, strict=True))
    runs.update(dict.fromkeys(plan.kieu_fusion_records(), "VIRAL"))
    return runs


def timings_from_runs(folder: str | Path) -> dict[str, ModelTiming]:
    """Per model, the medians over the ``metrics.json`` files below ``folder``."""
    per_model: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(folder).rglob("metrics.json")):
        record = json.loads(path.read_text())
        if record.get("epochs_run"):
            per_model.setdefault(record["model"], []).append(record)
    if not per_model:
        raise InputError(f"--runs {folder}: no metrics.json with epochs_run below it")
    return {
        model: ModelTiming(
            epoch_s=statistics.median(r["seconds"]["train"] / r["epochs_run"] for r in records),
            eval_s=statistics.median(r["seconds"]["eval"] / r["epochs_run"] for r in records),
            epochs=statistics.median(r["epochs_run"] for r in records),
            setup_s=statistics.median(
                max(r["seconds"]["total"] - r["seconds"]["train"] - r["seconds"]["eval"], 0.0) for r in records
            ),
        )
        for model, records in per_model.items()
    }


def timings_from_file(path: str | Path) -> dict[str, ModelTiming]:
    """Timings from ``bench.json`` (its first scale) or a CSV ``model,epoch_s[,eval_s][,epochs]``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--times: file not found: {path}")
    if path.suffix == ".json":
        rows = [r for r in json.loads(path.read_text()).get("results", []) if r.get("epoch_s") is not None]
        return {r["model"]: ModelTiming(float(r["epoch_s"]), float(r.get("eval_s") or 0.0)) for r in rows}
    out = {}
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                epochs = row.get("epochs") or None
                out[row["model"]] = ModelTiming(
                    float(row["epoch_s"]), float(row.get("eval_s") or 0.0), float(epochs) if epochs else None
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}, line {line}: needs model, epoch_s (numbers): {exc}") from None
    return out


@dataclass(frozen=True)
class Estimate:
    """Device hours per model and in total."""

    rows: list[dict[str, Any]]
    packing_gain: float

    @property
    def runs(self) -> int:
        return sum(r["runs"] for r in self.rows)

    @property
    def hours(self) -> float:
        return sum(r["hours"] for r in self.rows)

    def markdown(self) -> str:
        lines = [
            "| model | runs | s/epoch | eval s/epoch | epochs | hours |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['model']} | {r['runs']} | {r['epoch_s']:.3g} | {r['eval_s']:.3g} | "
                f"{r['epochs']:.0f}{' (cap)' if r['capped'] else ''} | {r['hours']:.1f} |"
                for r in self.rows
            ),
            f"| **total** | **{self.runs}** | | | | **{self.hours:.1f}** |",
            "",
            f"{self.runs} training runs, {self.hours:.1f} device hours one run after another; "
            f"with packing (throughput gain {self.packing_gain:g}): {self.hours / self.packing_gain:.1f} "
            f"device hours, {self.runs * self.packing_gain / max(self.hours, 1e-12):.1f} runs per device hour.",
        ]
        return "\n".join(lines) + "\n"


def estimate(
    runs: Mapping[str, str],
    timings: Mapping[str, ModelTiming],
    epoch_cap: int,
    epochs: float | None = None,
    startup_s: float = 0.0,
    packing_gain: float = 1.0,
) -> Estimate:
    """Device hours of ``runs``; every model needs a timing. ``epochs`` replaces measured epoch counts;
    ``startup_s`` is a job's start before the run's own clock (interpreter, imports)."""
    counts = Counter(runs.values())
    missing = sorted(set(counts) - set(timings))
    if missing:
        raise InputError(f"no timing for model(s) {missing}; measured: {sorted(timings)}")
    if packing_gain <= 0:
        raise InputError(f"--packing-gain must be > 0, got {packing_gain}")
    rows = []
    for model, n in counts.items():
        t = timings[model]
        n_epochs = min(epochs or t.epochs or epoch_cap, epoch_cap)
        seconds = n * (startup_s + t.setup_s + n_epochs * (t.epoch_s + t.eval_s))
        capped = epochs is None and t.epochs is None
        rows.append(dict(model=model, runs=n, epoch_s=t.epoch_s, eval_s=t.eval_s, epochs=n_epochs, capped=capped))
        rows[-1]["hours"] = seconds / 3600
    return Estimate(rows, packing_gain)
