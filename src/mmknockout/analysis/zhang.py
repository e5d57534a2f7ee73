"""Zhang (2025), "Evaluating Vision-Language Model Embeddings for Multimodal Recommendation".

Table 2 of the paper (FREEDOM and LATTICE, test R@20/N@20/P@20 per VLM2Vec feature strategy)
regenerated from the baseline rows of the knockout table, one table per *reading* (which slot a
single vector fills: ``studies.zhang2025.readings`` maps each paper column to a feature set), next
to the published numbers (``resources/reference/zhang2025_table2.csv``) and the paper's claims.

Claims are checked on the first study metric (Recall@20, the metric the paper quotes):

* text >> visual: Textual >= (1 + MUCH) x Visual;
* Textual ~ Dual: |Dual - Textual| <= NEAR x Textual;
* Dual > Prompt#1/#2: Dual > max(Prompt#1, Prompt#2) (late over early fusion);
* VLM2Vec >= Original: the best VLM2Vec strategy >= ResNet-50 + BERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .plots import display_dataset, plt, save
from .tables import fmt_change, read_knockout, write_csv

#: config column -> the paper's label, in the paper's order
STRATEGIES = {
    "original": "Original",
    "visual": "Visual",
    "textual": "Textual",
    "prompt1": "Prompt#1",
    "prompt2": "Prompt#2",
    "dual": "Dual",
}
VLM2VEC = ["Visual", "Textual", "Prompt#1", "Prompt#2", "Dual"]
MUCH = 0.05  # ">>": at least 5 % more (the paper's smallest gap it calls consistent: LATTICE, Sports, +5.7 %)
NEAR = 0.02  # "~": within 2 % (the paper: "within 0.3 %", largest published gap 1.3 %)
REFERENCE_COLUMNS = ["dataset", "model", "strategy", "metric", "value"]
LONG = ["reading", "dataset", "model", "strategy", "metric", "value"]


def read_reference(path: str | Path) -> pd.DataFrame:
    """The published Table 2 in long format (dataset, model, strategy, metric, value)."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read published table {path}: {exc}") from None
    if list(df.columns) != REFERENCE_COLUMNS:
        raise InputError(f"{path}: columns must be {', '.join(REFERENCE_COLUMNS)}; found {', '.join(df.columns)}")
    unknown = sorted(set(df["strategy"]) - set(STRATEGIES.values()))
    if unknown:
        raise InputError(f"{path}: unknown strategies {unknown}")
    return df


def ours_long(
    knockout: pd.DataFrame,
    readings: Mapping[str, Mapping[str, str]],
    models: Sequence[str],
    metrics: Sequence[str],
) -> pd.DataFrame:
    """Our baseline values (mean over seeds, ok runs) per reading, dataset, model, strategy and metric."""
    missing = [m for m in metrics if m not in knockout.columns]
    if missing:
        raise InputError(f"knockout table has no column {', '.join(missing)} (add the K to training.topk)")
    base = knockout[
        (knockout["condition"] == "baseline") & (knockout["status"] == "ok") & knockout["model"].isin(models)
    ]
    rows = []
    for reading, columns in readings.items():
        for column, feature_set in columns.items():
            part = base[base["feature_set"] == feature_set]
            for (dataset, model), df in part.groupby(["dataset", "model"], sort=True):
                for metric in metrics:
                    value = float(df[metric].mean())
                    rows.append([reading, display_dataset(dataset), model, STRATEGIES[column], metric, value])
    return pd.DataFrame(rows, columns=LONG)


def paper_table(ours: pd.DataFrame, reading: str, models: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One reading in the paper's layout: a row per dataset and model, ``<strategy> <metric>`` columns."""
    df = ours[ours["reading"] == reading]
    columns = [f"{s} {m}" for s in STRATEGIES.values() for m in metrics]
    if df.empty:
        return pd.DataFrame(columns=["dataset", "model"] + columns)
    wide = df.assign(column=df["strategy"] + " " + df["metric"]).pivot_table(
        index=["dataset", "model"], columns="column", values="value", aggfunc="first"
    )
    wide = wide.reindex(columns=columns).reset_index()
    order = {m: i for i, m in enumerate(models)}
    wide = wide.assign(_m=wide["model"].map(order)).sort_values(["dataset", "_m"], kind="stable")
    return _formatted(wide.drop(columns="_m"), columns).reset_index(drop=True)


def comparison(ours: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every cell we have next to the published one: abs diff = ours - published, rel diff % of published."""
    merged = ours.merge(published, on=["dataset", "model", "strategy", "metric"], suffixes=("", " published"))
    merged = merged.rename(columns={"value": "ours", "value published": "published"})
    merged["abs diff"] = merged["ours"] - merged["published"]
    merged["rel diff %"] = [
        fmt_change(d / p * 100) if p else "" for d, p in zip(merged["abs diff"], merged["published"], strict=True)
    ]
    merged = _sorted(merged)
    return _formatted(merged, ["ours", "published", "abs diff"])


def claim_rows(values: Mapping[str, float]) -> list[tuple[str, str, float, float, bool | None]]:
    """(claim, compared, left, right, supported) of one dataset/model/metric; strategy -> value."""
    v = {s: values.get(s, np.nan) for s in STRATEGIES.values()}
    prompt = "Prompt#1" if not v["Prompt#2"] > v["Prompt#1"] else "Prompt#2"
    present = [s for s in VLM2VEC if np.isfinite(v[s])]
    best = max(present, key=lambda s: v[s]) if present else "Dual"
    checks = [
        ("text >> visual", "Textual vs Visual", v["Textual"], v["Visual"], v["Textual"] >= (1 + MUCH) * v["Visual"]),
        (
            "Textual ~ Dual",
            "Dual vs Textual",
            v["Dual"],
            v["Textual"],
            abs(v["Dual"] - v["Textual"]) <= NEAR * v["Textual"],
        ),
        ("Dual > Prompt#1/#2", f"Dual vs {prompt}", v["Dual"], v[prompt], v["Dual"] > v[prompt]),
        ("VLM2Vec >= Original", f"{best} vs Original", v[best], v["Original"], v[best] >= v["Original"]),
    ]
    return [(c, k, a, b, bool(ok) if np.isfinite(a) and np.isfinite(b) else None) for c, k, a, b, ok in checks]


CLAIM_COLUMNS = [
    "source",
    "reading",
    "dataset",
    "model",
    "metric",
    "claim",
    "compared",
    "left",
    "right",
    "ratio",
    "supported",
]


def claims(ours: pd.DataFrame, published: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's four claims on our values (per reading) and on the published ones, on ``metric``."""
    sources = [("ours", ours)] + [("published", published.assign(reading=""))]
    rows = []
    for source, df in sources:
        df = df[df["metric"] == metric]
        for (reading, dataset, model), group in df.groupby(["reading", "dataset", "model"], sort=True):
            values = dict(zip(group["strategy"], group["value"], strict=True))
            for claim, compared, left, right, ok in claim_rows(values):
                ratio = left / right if np.isfinite(left) and np.isfinite(right) and right else np.nan
                verdict = "not run" if ok is None else ("supported" if ok else "not supported")
                rows.append([source, reading, dataset, model, metric, claim, compared, left, right, ratio, verdict])
    out = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return _formatted(out, ["left", "right", "ratio"])


def figure(ours: pd.DataFrame, published: pd.DataFrame, metric: str, path: str | Path) -> None:
    """Grouped bars per dataset and model: each strategy's value, ours (one bar per reading) and published."""
    ours = ours[ours["metric"] == metric]
    published = published[published["metric"] == metric]
    panels = sorted(set(zip(ours["dataset"], ours["model"], strict=True)))
    readings = list(dict.fromkeys(ours["reading"]))
    series = [(f"ours, {r}", ours[ours["reading"] == r]) for r in readings] + [("published", published)]
    fig, axes = plt.subplots(max(len(panels), 1), 1, figsize=(8, 2.8 * max(len(panels), 1)), squeeze=False)
    labels = list(STRATEGIES.values())
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for ax, (dataset, model) in zip(axes[:, 0], panels, strict=False):
        for j, (name, df) in enumerate(series):
            cell = df[(df["dataset"] == dataset) & (df["model"] == model)]
            heights = cell.set_index("strategy")["value"].reindex(labels).to_numpy(dtype=float)
            ax.bar(x + (j - (len(series) - 1) / 2) * width, heights, width, label=name)
        ax.set_xticks(x, labels)
        ax.set_ylabel(metric)
        title = f"{dataset}, {model}"
        if published[(published["dataset"] == dataset) & (published["model"] == model)].empty:
            title += " (not in the paper: no published bars)"
        ax.set_title(title)
        ax.set_ylim(0, 1.3 * max(ax.get_ylim()[1], 1e-9))  # room for the legend above the bars
        ax.legend(fontsize=7, ncols=len(series), loc="upper left")
    if not panels:
        axes[0, 0].set_title("no baseline runs of the configured strategies")
        axes[0, 0].axis("off")
    fig.suptitle(f"Zhang (2025) Table 2: ours vs published, {metric}")
    fig.tight_layout()
    save(fig, path)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    order = {s: i for i, s in enumerate(STRATEGIES.values())}
    keys = df.assign(_s=df["strategy"].map(order))
    return keys.sort_values(["reading", "dataset", "model", "_s", "metric"], kind="stable").drop(columns="_s")


def _formatted(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` as fixed 4-decimal strings (empty when undefined), so equal inputs give equal bytes."""
    out = df.copy()
    for c in columns:
        out[c] = [f"{x:.4f}" if isinstance(x, float) and np.isfinite(x) else "" for x in out[c].astype(float)]
    return out


# ---------------------------------------------------------------- workflow steps


def table_step(
    *,
    knockout: str,
    table: str,
    reading: str,
    columns: Mapping[str, str],
    models: Sequence[str],
    metrics: Sequence[str],
) -> None:
    """Workflow step: Table 2 of the paper for one reading (``columns``: paper column -> feature set)."""
    ours = ours_long(read_knockout(knockout), {reading: columns}, models, metrics)
    write_csv(paper_table(ours, reading, models, metrics), table)


def comparison_step(
    *,
    knockout: str,
    reference: str,
    comparison_table: str,
    claims_table: str,
    figure_file: str,
    readings: Mapping[str, Mapping[str, str]],
    models: Sequence[str],
    metrics: Sequence[str],
) -> None:
    """Workflow step: ours vs published per cell, the paper's claims on both, and the bar figure."""
    ours = ours_long(read_knockout(knockout), readings, models, metrics)
    published = read_reference(reference)
    published = published[published["model"].isin(models) & published["metric"].isin(metrics)]
    write_csv(comparison(ours, published), comparison_table)
    write_csv(claims(ours, published, metrics[0]), claims_table)
    figure(ours, published, metrics[0], figure_file)
