"""Pomo et al. (2025), "Do Recommender Systems Really Leverage Multimodal Content?": the paper's three
claims checked on our runs (its tables are not available, so no published number is compared).

From the knockout table (test metrics of the selected runs, mean over seeds, ``ok`` runs):

1. *noise < real*: for every multimodal model, real feature set and metric, the baseline beats the
   feature set's noise control (``studies.pomo2025.noise``: the knockout at the same dimension);
2. *LVLM >= late fusion*: every LVLM [EOS] feature set is at least as good as the late-fusion one
   (ResNet-50 + SBERT) for every model and metric;
3. *keywords help*: Attribute Item-kNN on the keyword one-hot is at least as good as ItemKNN "in
   several cases": supported when it holds in at least one (dataset, metric) case; the count is given.

A case whose runs are missing is left undecided (``holds`` empty) and a claim with no decided case
is untested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .tables import read_knockout, write_csv

CLAIMS = {
    "noise_below_real": "noise features give lower accuracy than the real features, for every model",
    "lvlm_at_least_late_fusion": "LVLM [EOS] embeddings are at least as good as late fusion (RN50 + SBERT)",
    "keywords_help_knn": "Attribute Item-kNN with LVLM keywords is at least as good as ItemKNN in several cases",
}
CASE_COLUMNS = ["claim", "dataset", "model", "feature_set", "metric", "ours", "against", "against_what", "holds"]
RESULT_COLUMNS = ["dataset", "model", "feature_set", "condition", "metric", "value"]


def results(knockout: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean test value over seeds of every (dataset, model, feature set, condition) and metric, long format."""
    missing = [m for m in metrics if m not in knockout.columns]
    if missing:
        raise InputError(f"knockout table has no column {', '.join(missing)} (add the K to training.topk)")
    ok = knockout[knockout["status"] == "ok"]
    keys = ["dataset", "model", "feature_set", "condition"]
    mean = ok.groupby(keys, sort=True)[list(metrics)].mean().reset_index()
    return mean.melt(id_vars=keys, value_vars=list(metrics), var_name="metric", value_name="value")[RESULT_COLUMNS]


def _lookup(long: pd.DataFrame) -> dict[tuple[str, str, str, str, str], float]:
    return {
        (r.dataset, r.model, r.feature_set, r.condition, r.metric): float(r.value) for r in long.itertuples(index=False)
    }


def cases(long: pd.DataFrame, study: Mapping[str, Any], datasets: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per compared pair of the three claims, for the feature sets each dataset runs
    (``datasets``: dataset -> its feature sets); ``holds`` is None when a value is missing."""
    value = _lookup(long)
    rows = []

    def add(claim, dataset, model, fs, metric, ours_key, against_key, what, at_least):
        ours, against = value.get(ours_key, np.nan), value.get(against_key, np.nan)
        decided = bool(np.isfinite(ours) and np.isfinite(against))
        holds = (bool(ours >= against) if at_least else bool(ours < against)) if decided else None
        rows.append([claim, dataset, model, fs, metric, ours, against, what, holds])

    for dataset, feature_sets in datasets.items():
        noise = {fs: c for fs, c in study["noise"].items() if fs in feature_sets}
        lvlm = [fs for fs in study["lvlm"] if fs in feature_sets]
        keywords = [fs for fs in study["keywords"] if fs in feature_sets]
        fusion = study["late_fusion"]
        for metric in study["metrics"]:
            for model in study["models"]:
                for fs, condition in noise.items():
                    real, knocked = (dataset, model, fs, "baseline", metric), (dataset, model, fs, condition, metric)
                    add("noise_below_real", dataset, model, fs, metric, knocked, real, f"{fs} baseline", False)
                for fs in lvlm:
                    ours, against = (
                        (dataset, model, fs, "baseline", metric),
                        (dataset, model, fusion, "baseline", metric),
                    )
                    add("lvlm_at_least_late_fusion", dataset, model, fs, metric, ours, against, fusion, True)
            for fs in keywords:
                ours, against = (
                    (dataset, "AttributeItemKNN", fs, "baseline", metric),
                    (dataset, "ItemKNN", fs, "baseline", metric),
                )
                add("keywords_help_knn", dataset, "AttributeItemKNN", fs, metric, ours, against, "ItemKNN", True)
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def verdicts(case_table: pd.DataFrame) -> pd.DataFrame:
    """Per claim: decided cases, those that hold, and whether our runs support it (None: untested)."""
    rows = []
    for claim, statement in CLAIMS.items():
        decided = [h for h in case_table.loc[case_table["claim"] == claim, "holds"] if h is not None]
        holding = int(sum(bool(h) for h in decided))
        if not decided:
            supported = None
        elif claim == "keywords_help_knn":
            supported = holding >= 1
        else:
            supported = holding == len(decided)
        rows.append([claim, statement, len(decided), holding, supported])
    return pd.DataFrame(rows, columns=["claim", "statement", "cases", "holding", "supported"])


def claims_step(
    *,
    knockout: str,
    results_table: str,
    cases_table: str,
    claims_table: str,
    study: Mapping[str, Any],
    datasets: Mapping[str, Sequence[str]],
) -> None:
    """Workflow step: our values, every compared pair and the verdict on each of the three claims."""
    long = results(read_knockout(knockout), study["metrics"])
    case_table = cases(long, study, datasets)
    write_csv(long, results_table)
    write_csv(case_table, cases_table)
    write_csv(verdicts(case_table), claims_table)
