"""Runtime table from Snakemake ``benchmark:`` files.

Benchmark files lie under ``benchmarks/<dir>/...tsv`` (one per job; a job benchmarked several times
has several lines, the median is taken). For ``train`` the path is
``train/{dataset}/{feature_set}/{model}/{condition}/{params}/seed{seed}.tsv`` and the table splits it
by model. Only the files that exist are read.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

#: benchmark directory -> rule name
RULES = {
    "prepare": "prepare_split",
    "graphs": "aux_graphs",
    "text_features": "text_features",
    "image_features": "image_features",
    "train": "train",
}
COLUMNS = ["rule", "model", "jobs", "median s", "total s", "peak max_rss MB"]


def read_benchmark(path: str | Path) -> dict | None:
    """Median seconds and maximum max_rss (MB) of one benchmark TSV; None if unreadable or empty."""
    try:
        df = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if df.empty or "s" not in df.columns:
        return None
    s = pd.to_numeric(df["s"], errors="coerce")
    rss = pd.to_numeric(df.get("max_rss", pd.Series(dtype=float)), errors="coerce")
    return {
        "s": float(s.median()) if s.notna().any() else math.nan,
        "max_rss": float(rss.max()) if rss.notna().any() else math.nan,
    }


def collect(root: str | Path = "benchmarks") -> pd.DataFrame:
    """One row per benchmark file: rule, model ('' unless train), seconds, max_rss MB, file."""
    root = Path(root)
    rows = []
    for sub, rule in RULES.items():
        base = root / sub
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.tsv")):
            rec = read_benchmark(path)
            if rec is None:
                continue
            rel = path.relative_to(base).parts
            model = rel[2] if rule == "train" and len(rel) >= 4 else ""
            rows.append(
                {
                    "rule": rule,
                    "model": model,
                    "s": rec["s"],
                    "max_rss": rec["max_rss"],
                    "file": str(path.relative_to(root)),
                }
            )
    return pd.DataFrame(rows, columns=["rule", "model", "s", "max_rss", "file"])


def runtime_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule and (for train) model: number of jobs, median and total seconds, peak max_rss (MB).

    A ``train`` line with model 'all' sums every training job."""
    from ..models.registry import MODELS

    rows = []
    order = list(RULES.values())
    rank_m = {m: i for i, m in enumerate(MODELS)}
    for rule in order:
        part = jobs[jobs["rule"] == rule]
        if part.empty:
            continue
        groups = [("all", part)] if rule == "train" else [("", part)]
        if rule == "train":
            models = sorted(set(part["model"]), key=lambda m: (rank_m.get(m, len(rank_m)), m))
            groups += [(m, part[part["model"] == m]) for m in models]
        for model, g in groups:
            rows.append(
                {
                    "rule": rule,
                    "model": model,
                    "jobs": int(len(g)),
                    "median s": _f(g["s"].median()),
                    "total s": _f(g["s"].sum(min_count=1)),
                    "peak max_rss MB": _f(g["max_rss"].max()),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _f(x: float) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.2f}"


def write(df: pd.DataFrame, path: str | Path) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def runtime_step(*, table: str, benchmarks: str) -> None:
    """Workflow step: the runtime table from every benchmark record under ``benchmarks``."""
    write(runtime_table(collect(benchmarks)), table)
