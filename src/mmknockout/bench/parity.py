"""``python -m mmknockout parity``: test metrics of this project against the MMRec toolbox's.

Each model is trained on the same MMRec-layout folder by both sides, at the same grid point (the
toolbox's first combination, checked against this project's first grid point), with the same
epoch cap, early stopping (validation ``valid_metric``, ``patience``) and seeds; the toolbox runs
through :mod:`mmknockout.bench.mmrec`, in a process of its own. Every finished run is appended to
the results file at once (JSON lines), and a second call skips the runs already there, so an
interrupted check resumes (a failed run is tried again). The summary compares the seed means of each test metric: the
difference (ours - MMRec) against the seed standard deviation (the two sides' sample standard
deviations pooled), and whether ``|difference| <= 1 sd``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import write_text
from .mmrec import grid_check, has_model, run_driver

METRICS = ("Recall@20", "NDCG@20")
OURS, TOOLBOX = "ours", "mmrec"


def seeds_of(n: int, first: int = 999) -> list[int]:
    """``n`` consecutive seeds from the toolbox's default seed."""
    return list(range(first, first + n))


def fit_ours(folder: Path, model: str, seed: int, epochs: int, patience: int, valid_metric: str, threads: int) -> dict:
    """One run of this project's trainer on ``folder`` at the first grid point."""
    import numpy as np
    import torch

    from .. import config as cfg
    from ..device import set_threads
    from ..models.registry import get_model_class
    from ..train.trainer import TrainConfig, fit
    from .folder import read_folder

    set_threads(threads)
    t0 = time.perf_counter()
    data, features = read_folder(folder)
    model_class = get_model_class(model)
    tensors = {m: torch.from_numpy(np.ascontiguousarray(features[m])) for m in model_class.modalities if m in features}
    point = cfg.parse_params_id(model, cfg.params_id(cfg.grid_points(model, "full")[0]))
    train = TrainConfig(epochs=epochs, patience=patience, valid_metric=valid_metric, seed=seed)
    result = fit(model_class, data, tensors, point, train)
    return {
        "model": model,
        "seed": seed,
        "point": point,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "valid": result.valid,
        "test": result.test,
        "seconds": time.perf_counter() - t0,
    }


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The runs recorded so far (one JSON object a line; a torn last line is ignored)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")
        fh.flush()


def run(
    mmrec: str | Path,
    data: str | Path,
    models: list[str],
    seeds: list[int],
    epochs: int,
    out: Path,
    patience: int = 20,
    valid_metric: str = "Recall@20",
    threads: int = 2,
) -> list[dict[str, Any]]:
    """Train every (model, seed) on both sides, ours then MMRec, skipping runs already in ``out``
    (``out/parity.jsonl``); writes ``out/parity.md``. Returns the summary rows."""
    missing = [m for m in models if not has_model(mmrec, m)]
    if missing:
        raise InputError(f"{mmrec}: the toolbox has no configs/model/<model>.yaml for {missing}")
    results = out / "parity.jsonl"
    done = {(r["side"], r["model"], r["seed"]) for r in read_rows(results) if "error" not in r}  # failed: again
    for model in models:
        differ = grid_check(mmrec, model)
        for seed in seeds:
            for side in (OURS, TOOLBOX):
                if (side, model, seed) in done:
                    continue
                if side == OURS:
                    try:
                        row = fit_ours(Path(data), model, seed, epochs, patience, valid_metric, threads)
                    except Exception as exc:  # recorded like a failed toolbox run; the others go on
                        row = {"error": f"{type(exc).__name__}: {exc}"}
                else:
                    row = run_driver(
                        mmrec, data, model, "fit", seed=seed, epochs=epochs, patience=patience,
                        valid_metric=valid_metric, threads=threads,
                    )  # fmt: skip
                row.update(side=side, model=model, seed=seed, point_differs={k: list(v) for k, v in differ.items()})
                append_row(results, row)
                test = row.get("test") or {}
                shown = ", ".join(f"{m} {test[m]:.4f}" for m in METRICS if m in test) or row.get("error", "")
                print(f"[parity] {model} seed {seed} {side}: {shown}", flush=True)
    summary = summarise(read_rows(results), models)
    write_text(out / "parity.md", markdown(summary, epochs, patience, valid_metric))
    return summary


def pooled_sd(a: list[float], b: list[float]) -> float:
    """sqrt of the mean of the two sample variances (nan with fewer than two values a side)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)


def summarise(rows: Iterable[dict[str, Any]], models: list[str] | None = None) -> list[dict[str, Any]]:
    """Per model and metric: seed means, difference, standard deviations and the one-sd verdict."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if "error" not in row:
            runs.setdefault((row["model"], row["side"]), []).append(row)
    names = models or sorted({m for m, _ in runs})
    out = []
    for model in names:
        ours, tool = runs.get((model, OURS), []), runs.get((model, TOOLBOX), [])
        if not ours or not tool:
            continue
        for metric in METRICS:
            a = [r["test"][metric] for r in ours if metric in r["test"]]
            b = [r["test"][metric] for r in tool if metric in r["test"]]
            if not a or not b:
                continue
            diff, sd = statistics.fmean(a) - statistics.fmean(b), pooled_sd(a, b)
            out.append(
                {
                    "model": model,
                    "metric": metric,
                    "ours": statistics.fmean(a),
                    "mmrec": statistics.fmean(b),
                    "diff": diff,
                    "rel_diff": diff / statistics.fmean(b) if statistics.fmean(b) else math.nan,
                    "sd": sd,
                    "sd_ours": statistics.stdev(a) if len(a) > 1 else math.nan,
                    "sd_mmrec": statistics.stdev(b) if len(b) > 1 else math.nan,
                    "seeds": min(len(a), len(b)),
                    "within_1sd": bool(abs(diff) <= sd) if not math.isnan(sd) else None,
                    "epochs_ours": statistics.fmean(r["epochs_run"] for r in ours),
                    "epochs_mmrec": statistics.fmean(r["epochs_run"] for r in tool),
                }
            )
    return out


def markdown(summary: list[dict[str, Any]], epochs: int, patience: int, valid_metric: str) -> str:
    head = ["model", "metric", "ours", "MMRec", "diff", "rel.", "sd (pooled)", "sd ours", "sd MMRec", "seeds"]
    head += ["within 1 sd", "epochs ours", "epochs MMRec"]
    lines = [
        f"Test metrics at the best validation {valid_metric} epoch; epoch cap {epochs}, patience {patience}; "
        "seed means.",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for s in summary:
        verdict = {True: "yes", False: "**no**", None: "-"}[s["within_1sd"]]
        cells = [s["model"], s["metric"], f"{s['ours']:.4f}", f"{s['mmrec']:.4f}", f"{s['diff']:+.4f}"]
        cells += [f"{s['rel_diff']:+.0%}", f"{s['sd']:.4f}", f"{s['sd_ours']:.4f}", f"{s['sd_mmrec']:.4f}"]
        cells += [str(s["seeds"]), verdict, f"{s['epochs_ours']:.0f}", f"{s['epochs_mmrec']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
