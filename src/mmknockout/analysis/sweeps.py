"""The VBPR case study's table (Fig. 4): one row per sweep run and seed.

The design (which runs, which conditions) is :mod:`mmknockout.sweeps`; its names are re-exported
here for callers that import them from this module.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..sweeps import (
    SweepRun,
    constant_condition,
    noise_condition,
    sweep_conditions,
    sweep_runs,
)

__all__ = ["SweepRun", "constant_condition", "noise_condition", "sweep_conditions", "sweep_runs", "sweep_table"]


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
