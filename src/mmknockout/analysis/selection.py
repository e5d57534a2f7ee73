"""Grid-point selection (kept free of heavy imports: the workflow runs it once per model/condition).

Selection picks, per (dataset, feature set, model, condition, seed), the grid point with the best
validation metric (``selection: valid``, the default) or, to replicate the study's toolbox
exactly, the best *test* metric (``selection: test``). Values are compared rounded to 4 decimals,
ties go to the first params id in sorted order. Diverged runs are never selected while a finite
run exists; if all diverged, the chosen record says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

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
    best["selection"] = {
        "by": f"{selection} {metric}",
        "candidates": {r["params_id"]: _finite_or_none(score(r)) for r in records},
    }
    return best


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def select_step(*, records: Sequence[str], selected: str, metric: str, selection: str) -> None:
    """Workflow step: the chosen grid point of one (dataset, feature set, model, condition, seed)."""
    from ..io import write_json

    write_json(selected, select([read_json(p) for p in records], metric, selection))
