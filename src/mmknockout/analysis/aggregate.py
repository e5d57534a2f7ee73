"""The knockout table: one row per dataset, feature set, model, condition and seed.

The relative change vs baseline is computed, like the study, from values rounded to 4 decimals:
``(knockout - baseline) / baseline * 100``. Diverged runs keep their row, marked, without metrics.
``stop_reason`` (``early_stopping``, ``epoch_cap`` or ``diverged``), ``stop_epoch`` and
``epoch_cap`` (``training.epochs``) say why and when the selected run stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..models.registry import FAMILIES, MODELS
from .selection import DECIMALS

KEY = ["dataset", "feature_set", "model", "condition", "seed"]


def knockout_table(
    selected: Iterable[Mapping[str, Any]], condition_order: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """One row per dataset/feature set/model/condition/seed: test metrics and change vs baseline."""
    rows = []
    for r in selected:
        row = {k: r[k] for k in KEY}
        row.update(
            family=FAMILIES.get(r["model"], "user-defined"),
            status=r["status"],
            params=r["params_id"],
            best_epoch=r.get("best_epoch"),
            diverged_epoch=r.get("diverged_epoch"),
            stop_reason=r.get("stop_reason"),
            stop_epoch=r.get("stop_epoch"),
            epoch_cap=(r.get("training") or {}).get("epochs"),
        )
        for m in metrics:
            value = r.get("test", {}).get(m)
            row[m] = round(value, DECIMALS) if value is not None and r["status"] == "ok" else math.nan
        rows.append(row)
    if not rows:
        raise InputError("no selected runs to aggregate")
    df = pd.DataFrame(rows)
    group = ["dataset", "feature_set", "model", "seed"]
    base = df.loc[df["condition"] == "baseline", group + list(metrics)]
    merged = df[group].merge(base, on=group, how="left")
    for m in metrics:
        df[f"{m} change %"] = ((df[m] - merged[m]) / merged[m] * 100).round(1)
    order_model = {m: i for i, m in enumerate(MODELS)}
    order_cond = {c: i for i, c in enumerate(condition_order)}
    df["_m"] = df["model"].map(lambda m: order_model.get(m, len(order_model)))
    df["_c"] = df["condition"].map(lambda c: order_cond.get(c, len(order_cond)))
    df = df.sort_values(["dataset", "feature_set", "_m", "model", "_c", "condition", "seed"]).drop(columns=["_m", "_c"])
    return df.reset_index(drop=True)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f", na_rep="")


def aggregate_step(
    *,
    selected: Sequence[str],
    table: str,
    figure: str,
    conditions: Sequence[str],
    figure_conditions: Sequence[str],
    metric: str,
    topk: Sequence[int],
) -> None:
    """Workflow step: the knockout table and the relative-change figure from the selected runs."""
    from ..train.metrics import metric_names
    from . import plots
    from .selection import read_json

    knockout = knockout_table([read_json(p) for p in selected], conditions, metric_names(tuple(topk)))
    write_table(knockout, table)
    plots.relative_change(knockout, metric, figure_conditions, figure)
