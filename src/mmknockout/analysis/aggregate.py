"""Grid-point selection and the knockout table.

Selection picks, per (dataset, feature set, model, condition, seed), the grid point with the best
validation metric (``selection: valid``, the default) or, to replicate the study's toolbox
exactly, the best *test* metric (``selection: test``). Diverged runs are never selected while a
finite run exists; if all diverged, the record says so and the tables show "diverged".

The relative change vs baseline is computed, like the study, from values rounded to 4 decimals:
``(knockout - baseline) / baseline * 100``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import InputError
from ..models.registry import FAMILIES, MODELS

KEY = ["dataset", "feature_set", "model", "condition", "seed"]
DECIMALS = 4


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read run record {path}: {exc}") from None


def select(records: Sequence[Mapping[str, Any]], metric: str, selection: str = "valid") -> dict[str, Any]:
    """The chosen record among grid points, with every candidate's score listed."""
    if selection not in ("valid", "test"):
        raise InputError(f"selection must be 'valid' or 'test', got '{selection}'")
    if not records:
        raise InputError("no runs to select from")

    def score(r: Mapping[str, Any]) -> float:
        value = r.get(selection, {}).get(metric)
        return -math.inf if r["status"] != "ok" or value is None else round(value, DECIMALS)

    ranked = sorted(range(len(records)), key=lambda i: (-score(records[i]), records[i]["params_id"]))
    best = dict(records[ranked[0]])
    best["selection"] = {"by": f"{selection} {metric}",
                         "candidates": {r["params_id"]: _finite_or_none(score(r)) for r in records}}
    return best


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def knockout_table(selected: Iterable[Mapping[str, Any]], condition_order: Sequence[str],
                   metrics: Sequence[str]) -> pd.DataFrame:
    """One row per dataset/feature set/model/condition/seed: test metrics and change vs baseline."""
    rows = []
    for r in selected:
        row = {k: r[k] for k in KEY}
        row.update(family=FAMILIES.get(r["model"], "user-defined"), status=r["status"], params=r["params_id"],
                   best_epoch=r.get("best_epoch"), diverged_epoch=r.get("diverged_epoch"))
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
