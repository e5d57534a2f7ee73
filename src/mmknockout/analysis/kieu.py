"""Kieu et al. (2025), "Enhancing Multimodal Recommendations with Vision-Language Models and
Information-Aware Fusion" (VIRAL).

Regenerated from our runs, next to the published numbers (``resources/reference/kieu2025_table*.csv``):

* **Table 1**: test Recall/NDCG@10/20 of the baselines and VIRAL, the paper's layout (a row per
  dataset and metric, a column per model), an ``ours``, a ``published`` and a ``diff %`` row each.
  VIRAL's column is VIRAL on the VLM-description features (``studies.kieu2025.viral``), every other
  model's its baseline run on the first of ``studies.kieu2025.table1`` that runs it.
* **Table 2** (ablation): VIRAL with upstream image features (Original), with descriptions generated
  without the title (VLM w/o title), with the fusion replaced (Pooling, Concat, Weighted Concat: the
  runs of ``studies.kieu2025.fusion``, VIRAL's grid points with ``fusion`` set, selected here as
  select_params selects) and the full model.
* **Modality contribution**: the change (%) of each metric under text-, image- and dual-noise vs the
  baseline, per model, with upstream image features (``contribution.reference``) and with VLM
  descriptions (``contribution.vlm``), and the paper's claims on them per model:

  - VLM descriptions improve accuracy: baseline(vlm) > baseline(reference);
  - the visual contribution grows: the image-noise change is more negative with vlm;
  - less reliance on text: the text-noise change is less negative with vlm;
  - the gain survives text-noise: text-noise(vlm) > text-noise(reference). The "image" feature is
    now text about the image (the sentence encoder's space): if the gain vanishes once the title
    text is noise, the descriptions act as a second text view rather than a visual one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .plots import display_dataset, plt, save
from .selection import read_json, select
from .tables import fmt_change, read_knockout, write_csv

#: the paper's metric labels
SHORT = {"Recall@10": "R@10", "Recall@20": "R@20", "NDCG@10": "N@10", "NDCG@20": "N@20"}
TABLE1_COLUMNS = ["dataset", "model", "metric", "value"]
TABLE2_COLUMNS = ["dataset", "module", "approach", "metric", "value"]
#: config fusion value -> Table 2's label, in the paper's order
FUSIONS = {"pooling": "Pooling", "concat": "Concat", "weighted_concat": "Weighted Concat"}
#: Table 2's rows (module, approach), in the paper's order
ABLATION_ROWS = [
    ("image feature", "Original"),
    ("image feature", "VLM w/o title"),
    ("fusion", "Pooling"),
    ("fusion", "Concat"),
    ("fusion", "Weighted Concat"),
    ("full model", "VIRAL"),
]
TABLE2_METRICS = ["Recall@10", "Recall@20", "NDCG@20"]
NOISE = ["text-noise", "image-noise", "dual-noise"]


def read_reference(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A published table in long format with exactly ``columns``."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read published table {path}: {exc}") from None
    if list(df.columns) != list(columns):
        raise InputError(f"{path}: columns must be {', '.join(columns)}; found {', '.join(df.columns)}")
    return df


def _ok(knockout: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    missing = [m for m in metrics if m not in knockout.columns]
    if missing:
        raise InputError(f"knockout table has no column {', '.join(missing)} (add the K to training.topk)")
    return knockout[knockout["status"] == "ok"]


def means(knockout: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds (ok runs) per dataset (paper spelling), feature set, model, condition; long format."""
    df = _ok(knockout, metrics)
    rows = [
        [display_dataset(ds), fs, model, cond, metric, float(group[metric].mean())]
        for (ds, fs, model, cond), group in df.groupby(["dataset", "feature_set", "model", "condition"], sort=True)
        for metric in metrics
    ]
    return pd.DataFrame(rows, columns=["dataset", "feature_set", "model", "condition", "metric", "value"])


# ---------------------------------------------------------------- Table 1


def table1_ours(
    knockout: pd.DataFrame, models: Sequence[str], metrics: Sequence[str], feature_sets: Sequence[str], viral: str
) -> pd.DataFrame:
    """Our Table 1 cells (dataset, model, metric, value): VIRAL from ``viral``, the others from the first
    of ``feature_sets`` that has their baseline."""
    base = means(knockout, metrics)
    base = base[base["condition"] == "baseline"]
    parts = []
    for model in models:
        for fs in [viral] if model == "VIRAL" else feature_sets:
            part = base[(base["model"] == model) & (base["feature_set"] == fs)]
            if not part.empty:
                parts.append(part)
                break
    if not parts:
        return pd.DataFrame(columns=TABLE1_COLUMNS)
    return pd.concat(parts)[TABLE1_COLUMNS].reset_index(drop=True)


def table1(ours: pd.DataFrame, published: pd.DataFrame, models: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """The paper's layout: per dataset and metric an ``ours``, ``published`` and ``diff %`` row; a column
    per model (ours first in the study's order, then the published-only models such as MENTOR)."""
    published = published[published["metric"].isin(metrics)]
    columns = list(models) + [m for m in dict.fromkeys(published["model"]) if m not in models]
    datasets = list(dict.fromkeys(list(published["dataset"]) + list(ours["dataset"])))
    have = set(ours["dataset"])
    ours_cells = {(d, m, k): v for d, m, k, v in ours[TABLE1_COLUMNS].itertuples(index=False)}
    pub_cells = {(d, m, k): v for d, m, k, v in published[TABLE1_COLUMNS].itertuples(index=False)}
    rows = []
    for dataset in datasets:
        if dataset not in have:
            continue
        for metric in metrics:
            o = [ours_cells.get((dataset, m, metric), np.nan) for m in columns]
            p = [pub_cells.get((dataset, m, metric), np.nan) for m in columns]
            d = [
                fmt_change((a - b) / b * 100) if np.isfinite(a) and np.isfinite(b) and b else ""
                for a, b in zip(o, p, strict=True)
            ]
            label = SHORT.get(metric, metric)
            rows += [
                [dataset, label, "ours", *_fmt(o)],
                [dataset, label, "published", *_fmt(p)],
                [dataset, label, "diff %", *d],
            ]
    return pd.DataFrame(rows, columns=["dataset", "metric", "row", *columns])


# ---------------------------------------------------------------- Table 2


def fusion_values(records: Sequence[Mapping[str, Any]], metric: str, selection: str) -> pd.DataFrame:
    """The fusion runs (run records) as Table 2 cells: per dataset, fusion and seed the grid point
    ``select`` picks, its test metrics; mean over seeds (ok runs)."""
    groups: dict[tuple, list] = {}
    for rec in records:
        fusion = rec.get("params", {}).get("fusion") if isinstance(rec.get("params"), Mapping) else None
        if fusion is None:
            fusion = dict(p.split("~", 1) for p in rec["params_id"].split("+")).get("fusion")
        if fusion not in FUSIONS:
            raise InputError(f"run record {rec.get('params_id')!r} has no ablation fusion")
        groups.setdefault((rec["dataset"], fusion, rec["seed"]), []).append(rec)
    chosen: dict[tuple, list] = {}
    for (dataset, fusion, _seed), recs in groups.items():
        best = select(recs, metric, selection)
        if best["status"] == "ok":
            chosen.setdefault((dataset, fusion), []).append(best["test"])
    rows = [
        [display_dataset(ds), "fusion", FUSIONS[f], m, float(np.mean([t[m] for t in tests]))]
        for (ds, f), tests in sorted(chosen.items())
        for m in TABLE2_METRICS
        if all(m in t for t in tests)
    ]
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def table2_ours(
    knockout: pd.DataFrame, fusion: pd.DataFrame, viral: str, original: str | None, notitle: str | None
) -> pd.DataFrame:
    """Our Table 2 cells: VIRAL's baselines on the feature sets of the rows, and the fusion runs."""
    base = means(knockout, TABLE2_METRICS)
    base = base[(base["condition"] == "baseline") & (base["model"] == "VIRAL")]
    rows = [fusion]
    for (module, approach), fs in zip(
        [("image feature", "Original"), ("image feature", "VLM w/o title"), ("full model", "VIRAL")],
        [original, notitle, viral],
        strict=True,
    ):
        if fs:
            part = base[base["feature_set"] == fs]
            rows.append(part.assign(module=module, approach=approach)[TABLE2_COLUMNS])
    rows = [r for r in rows if not r.empty]
    return pd.concat(rows).reset_index(drop=True) if rows else pd.DataFrame(columns=TABLE2_COLUMNS)


def table2(ours: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and Table 2 row: ours and published per metric, and the difference in %."""
    key = ["dataset", "module", "approach", "metric"]
    merged = ours.merge(published, on=key, how="left", suffixes=("", " published"))
    merged = merged[merged["dataset"].isin(set(ours["dataset"]))]
    order = {r: i for i, r in enumerate(ABLATION_ROWS)}
    rows = []
    for dataset in dict.fromkeys(list(published["dataset"]) + list(ours["dataset"])):
        part = merged[merged["dataset"] == dataset]
        if part.empty:
            continue
        for module, approach in sorted(set(zip(part["module"], part["approach"], strict=True)), key=order.get):
            cell = part[(part["module"] == module) & (part["approach"] == approach)].set_index("metric")
            row = [dataset, module, approach]
            for metric in TABLE2_METRICS:
                o = float(cell["value"].get(metric, np.nan))
                p = float(cell["value published"].get(metric, np.nan))
                diff = fmt_change((o - p) / p * 100) if np.isfinite(o) and np.isfinite(p) and p else ""
                row += [*_fmt([o, p]), diff]
            rows.append(row)
    columns = [f"{SHORT[m]} {s}" for m in TABLE2_METRICS for s in ("ours", "published", "diff %")]
    return pd.DataFrame(rows, columns=["dataset", "module", "approach", *columns])


# ---------------------------------------------------------------- modality contribution


def contribution(
    knockout: pd.DataFrame,
    feature_sets: Sequence[str],
    models: Sequence[str],
    conditions: Sequence[str],
    metrics: Sequence[str],
) -> pd.DataFrame:
    """Per dataset, feature set, model, condition and metric: baseline, value and change (%) vs baseline."""
    m = means(knockout, metrics)
    m = m[m["feature_set"].isin(feature_sets) & m["model"].isin(models)]
    base = m[m["condition"] == "baseline"].set_index(["dataset", "feature_set", "model", "metric"])["value"]
    rows = []
    for (dataset, fs, model), _ in m.groupby(["dataset", "feature_set", "model"], sort=True):
        for cond in conditions:
            for metric in metrics:
                b = base.get((dataset, fs, model, metric), np.nan)
                hit = m[
                    (m["dataset"] == dataset)
                    & (m["feature_set"] == fs)
                    & (m["model"] == model)
                    & (m["condition"] == cond)
                    & (m["metric"] == metric)
                ]["value"]
                v = float(hit.iloc[0]) if len(hit) else np.nan
                change = (v - b) / b * 100 if np.isfinite(v) and np.isfinite(b) and b else np.nan
                rows.append([dataset, fs, model, cond, metric, b, v, change])
    out = pd.DataFrame(
        rows, columns=["dataset", "feature_set", "model", "condition", "metric", "baseline", "value", "change %"]
    )
    order = {f: i for i, f in enumerate(feature_sets)} | {f"m:{x}": i for i, x in enumerate(models)}
    out = out.assign(_f=out["feature_set"].map(order), _m=out["model"].map(lambda x: order[f"m:{x}"]))
    return out.sort_values(["dataset", "_m", "_f"], kind="stable").drop(columns=["_f", "_m"]).reset_index(drop=True)


CLAIMS = [
    ("VLM descriptions improve accuracy", "baseline", "value", "baseline, vlm vs reference", 1),
    ("visual contribution grows", "image-noise", "change %", "image-noise change %, vlm vs reference", -1),
    ("less reliance on text", "text-noise", "change %", "text-noise change %, vlm vs reference", 1),
    ("the gain survives text-noise", "text-noise", "value", "text-noise value, vlm vs reference", 1),
]
CLAIM_COLUMNS = ["dataset", "model", "metric", "claim", "compared", "vlm", "reference", "supported"]


def claims(contrib: pd.DataFrame, reference: str, vlm: str) -> pd.DataFrame:
    """The paper's claims per dataset, model and metric on the contribution table (see the module docstring)."""
    rows = []
    for (dataset, model, metric), g in contrib.groupby(["dataset", "model", "metric"], sort=False):

        def cell(fs: str, cond: str, column: str, g: pd.DataFrame = g) -> float:
            if cond == "baseline":
                hit = g[g["feature_set"] == fs]["baseline"]
            else:
                hit = g[(g["feature_set"] == fs) & (g["condition"] == cond)][column]
            return float(hit.iloc[0]) if len(hit) else np.nan

        for claim, cond, column, compared, sign in CLAIMS:
            a, b = cell(vlm, cond, column), cell(reference, cond, column)
            if np.isfinite(a) and np.isfinite(b):
                verdict = "supported" if sign * (a - b) > 0 else "not supported"
            else:
                verdict = "not run"
            rows.append([dataset, model, metric, claim, compared, a, b, verdict])
    out = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    percent = out["compared"].str.contains("change %")
    for c in ("vlm", "reference"):
        out[c] = [
            (fmt_change(x) if p else f"{x:.4f}") if np.isfinite(x) else ""
            for x, p in zip(out[c].astype(float), percent, strict=True)
        ]
    return out


def contribution_figure(contrib: pd.DataFrame, feature_sets: Sequence[str], path: str | Path) -> None:
    """Per dataset (rows) and metric (columns): the change (%) per knockout condition, a bar per model
    and feature set (hatched: the VLM descriptions)."""
    datasets = list(dict.fromkeys(contrib["dataset"]))
    metrics = list(dict.fromkeys(contrib["metric"]))
    conditions = list(dict.fromkeys(contrib["condition"]))
    series = list(dict.fromkeys(zip(contrib["model"], contrib["feature_set"], strict=True)))
    models = list(dict.fromkeys(contrib["model"]))  # one colour per model; hatched: the VLM descriptions
    n_rows, n_cols = max(len(datasets), 1), max(len(metrics), 1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 3.2 * n_rows), squeeze=False)
    x = np.arange(len(conditions))
    width = 0.8 / max(len(series), 1)
    for i, dataset in enumerate(datasets):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            part = contrib[(contrib["dataset"] == dataset) & (contrib["metric"] == metric)]
            for k, (model, fs) in enumerate(series):
                cell = part[(part["model"] == model) & (part["feature_set"] == fs)].set_index("condition")
                heights = cell["change %"].reindex(conditions).to_numpy(dtype=float)
                hatch = "//" if fs != feature_sets[0] else None
                colour = f"C{models.index(model) % 10}"
                ax.bar(
                    x + (k - (len(series) - 1) / 2) * width,
                    heights,
                    width,
                    label=f"{model}, {fs}",
                    hatch=hatch,
                    color=colour,
                    edgecolor="black" if hatch else colour,
                )
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xticks(x, conditions)
            ax.set_title(f"{dataset}, {metric}")
            ax.set_ylabel("change vs baseline (%)")
            ax.legend(fontsize=6)
    if not datasets:
        axes[0, 0].set_title("no runs of the configured models and feature sets")
        axes[0, 0].axis("off")
    fig.suptitle("Kieu et al. (2025): modality contribution, upstream image features vs VLM descriptions")
    fig.tight_layout()
    save(fig, path)


def _fmt(values: Sequence[float]) -> list[str]:
    return [f"{x:.4f}" if np.isfinite(x) else "" for x in np.asarray(values, dtype=float)]


# ---------------------------------------------------------------- workflow steps


def table1_step(
    *,
    knockout: str,
    reference: str,
    table: str,
    models: Sequence[str],
    metrics: Sequence[str],
    feature_sets: Sequence[str],
    viral: str,
) -> None:
    """Workflow step: Table 1 of the paper, ours vs published."""
    ours = table1_ours(read_knockout(knockout), models, metrics, feature_sets, viral)
    published = read_reference(reference, TABLE1_COLUMNS)
    write_csv(table1(ours, published, models, metrics), table)


def table2_step(
    *,
    knockout: str,
    reference: str,
    table: str,
    records: Sequence[str] = (),
    viral: str,
    original: str | None = None,
    notitle: str | None = None,
    metric: str = "Recall@20",
    selection: str = "valid",
) -> None:
    """Workflow step: Table 2 (ablation) of the paper, ours vs published."""
    fusion = fusion_values([read_json(p) for p in records], metric, selection)
    ours = table2_ours(read_knockout(knockout), fusion, viral, original, notitle)
    write_csv(table2(ours, read_reference(reference, TABLE2_COLUMNS)), table)


def contribution_step(
    *,
    knockout: str,
    table: str,
    claims_table: str,
    figure_file: str,
    reference: str,
    vlm: str,
    models: Sequence[str],
    conditions: Sequence[str],
    metrics: Sequence[str],
) -> None:
    """Workflow step: the modality-contribution table, the claims on it and the figure."""
    contrib = contribution(read_knockout(knockout), [reference, vlm], models, conditions, metrics)
    out = contrib.copy()
    for c in ("baseline", "value"):
        out[c] = _fmt(out[c])
    out["change %"] = [fmt_change(x) for x in contrib["change %"]]
    write_csv(out, table)
    write_csv(claims(contrib, reference, vlm), claims_table)
    contribution_figure(contrib, [reference, vlm], figure_file)
