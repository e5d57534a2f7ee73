"""The VBPR case study's table (Fig. 4): one row per sweep run and seed.

The design (which runs, which conditions) is :mod:`mmknockout.sweeps`; its names are re-exported
here for callers that import them from this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
            row = {
                "panel": run.panel,
                "series": run.series,
                "model": run.model,
                "condition": run.condition,
                "reg_weight": float(run.reg_weight),
                "seed": rec["seed"],
                "status": rec["status"],
            }
            row.update({m: round(rec["test"][m], 4) if rec["status"] == "ok" else float("nan") for m in metrics})
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["panel", "series", "reg_weight", "seed"], kind="stable").reset_index(drop=True)


SWEEP_METRICS = ["Recall@10", "NDCG@10", "Recall@20", "NDCG@20"]


def sweeps_step(*, records: Sequence[str], table: str, figure: str, sweeps: Mapping[str, Any], metric: str) -> None:
    """Workflow step: the VBPR case-study table and Fig. 4 from the sweep runs."""
    from . import plots
    from .aggregate import write_table
    from .selection import read_json

    frame = sweep_table(sweep_runs(sweeps), [read_json(p) for p in records], SWEEP_METRICS)
    write_table(frame, table)
    plots.vbpr_sweeps(frame, metric, figure)
