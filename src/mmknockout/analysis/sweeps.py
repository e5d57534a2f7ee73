"""The VBPR case study (Fig. 4): accuracy across reg_weight under constant and noisy features.

* 4a: VBPR and BPR across ``reg_weight``; VBPR with all-zero features should coincide with BPR.
* 4b: VBPR with dual constant features of increasing value, across (large) ``reg_weight``.
* 4c: VBPR with dual noise N(mean, std^2) for several ``std``, across ``reg_weight``.

Each sweep point is an ordinary training run (same rule, same files); the sweep only adds the
conditions it needs (named ``sweep-const-<v>`` and ``sweep-noise-<std>``) and picks the runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..config import params_id

SWEEP_METRICS = ["Recall@10", "NDCG@10", "Recall@20", "NDCG@20"]


@dataclass(frozen=True)
class SweepRun:
    panel: str
    model: str
    condition: str
    series: str
    reg_weight: float

    @property
    def params(self) -> str:
        return params_id({"reg_weight": self.reg_weight})


def constant_condition(value: float) -> str:
    return f"sweep-const-{value:g}"


def noise_condition(std: float) -> str:
    return f"sweep-noise-{std:g}"


def sweep_conditions(sweeps: Mapping[str, Any]) -> dict[str, dict]:
    """The extra knockout conditions the sweeps need, by name."""
    if not sweeps:
        return {}
    out = {constant_condition(v): _dual({"kind": "constant", "value": float(v)}) for v in sweeps["constant"]["values"]}
    out[constant_condition(0)] = _dual({"kind": "constant", "value": 0.0})
    mean = float(sweeps["noise"].get("mean", 1.0))
    out.update({noise_condition(s): _dual({"kind": "noise", "mean": mean, "std": float(s)}) for s in sweeps["noise"]["std"]})
    return out


def _dual(rep: dict) -> dict:
    return {"text": dict(rep), "image": dict(rep)}


def sweep_runs(sweeps: Mapping[str, Any]) -> list[SweepRun]:
    if not sweeps:
        return []
    runs = []
    for reg in sweeps["reg_weight"]:
        runs += [SweepRun("4a", "VBPR", "baseline", "VBPR", reg), SweepRun("4a", "BPR", "baseline", "BPR", reg),
                 SweepRun("4a", "VBPR", constant_condition(0), "VBPR, zero features", reg)]
    for reg in sweeps["constant"]["reg_weight"]:
        runs += [SweepRun("4b", "VBPR", constant_condition(v), f"constant {v:g}", reg) for v in sweeps["constant"]["values"]]
    for reg in sweeps["noise"]["reg_weight"]:
        runs += [SweepRun("4c", "VBPR", noise_condition(s), f"noise std {s:g}", reg) for s in sweeps["noise"]["std"]]
    return runs


def sweep_table(runs: Iterable[SweepRun], records: Iterable[Mapping[str, Any]], metrics: Iterable[str]) -> pd.DataFrame:
    """One row per sweep run and seed, matched to its run record by model, condition and params."""
    by_key: dict[tuple, list] = {}
    for rec in records:
        by_key.setdefault((rec["model"], rec["condition"], rec["params_id"]), []).append(rec)
    rows = []
    for run in runs:
        for rec in by_key.get((run.model, run.condition, run.params), []):
            row = {"panel": run.panel, "series": run.series, "model": run.model, "condition": run.condition,
                   "reg_weight": float(run.reg_weight), "seed": rec["seed"], "status": rec["status"]}
            row.update({m: round(rec["test"][m], 4) if rec["status"] == "ok" else float("nan") for m in metrics})
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["panel", "series", "reg_weight", "seed"], kind="stable").reset_index(drop=True)


def sweeps_step(*, records: Sequence[str], table: str, figure: str, sweeps: Mapping[str, Any], metric: str) -> None:
    """Workflow step: the VBPR case-study table and Fig. 4 from the sweep runs."""
    from . import plots
    from .aggregate import write_table
    from .selection import read_json

    frame = sweep_table(sweep_runs(sweeps), [read_json(p) for p in records], SWEEP_METRICS)
    write_table(frame, table)
    plots.vbpr_sweeps(frame, metric, figure)
