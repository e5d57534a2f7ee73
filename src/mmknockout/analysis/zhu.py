"""Zhu et al. (2025), "Beyond Unimodal Boundaries: Generative Recommendation with Multimodal
Semantics" (MGR): our generative runs next to the published tables, and the knockout angle.

* **Table 5**: test MRR, NDCG and Hits at 5/10/20 of every variant (TIGER on text-only and image-only
  semantic IDs, MGR-EF, MGR-LF, MGR-LF++) per dataset and condition; the learning rate of the grid
  chosen on validation (``studies.zhu2025.valid_metric``), then the mean over seeds.
* **Ours vs published**: the baseline values beside Table 5's (the paper states no cutoff for MRR
  and NDCG; we set ours at @20, the beam width) and beside Tables 1-3 (AMI of first codes, prediction
  overlap, MGR-LF's Hits@5 by matched part), and the **orderings** of the variants per dataset and
  metric with Kendall's tau. The paper's TIGER numbers are far below TIGER's own (its setup, a
  pretrained T5 with natural-language prompts, is weaker); we train TIGER's from-scratch T5 on ID
  tokens, so the values are not expected to agree: the orderings are the comparison.
* **Semantic IDs**: the unique-prefix rate per level, collisions and AMI (text vs image vs fused first
  codes, each vs the item categories) per condition: knockouts before quantisation. Constant features
  put every item on one prefix (only the de-duplication digit tells items apart); the study's noise
  (mean 1, std 0.1) is a shared offset with a small spread, which TIGER's RQ-VAE (no input
  normalisation) collapses the same way, while zero-mean noise would give near-random codes.
* **Diagnostics**: the share of test users whose top-1 prediction two variants share; Hits@5 when
  only a part of the ID must match.
* **Knockout change**: MRR and NDCG change (%) vs the baseline per variant and condition, beside the
  ranking models' NDCG change from the knockout table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ..errors import InputError
from ..genrec.stats import adjusted_mutual_info
from ..io import require_file
from .plots import display_dataset, plt, save
from .selection import read_json, select
from .tables import read_knockout, write_csv

#: the paper's method names -> our variants
PUBLISHED = {
    "TIGER(CLIP-text)": "TIGER-text",
    "TIGER(CLIP-image)": "TIGER-image",
    "MGR-EF": "MGR-EF",
    "MGR-LF": "MGR-LF",
    "MGR-LF++": "MGR-LF++",
    "SASRec": "SASRec",
}
#: Tables 1 and 2's columns -> (the pair of our semantic-ID kinds, the pair of our variants)
PAIRS = {
    "Img vs. Txt": (("image", "text"), ("TIGER-image", "TIGER-text")),
    "Img vs. Multimodal": (("image", "fused"), ("TIGER-image", "MGR-EF")),
    "Txt vs. Multimodal": (("text", "fused"), ("TIGER-text", "MGR-EF")),
}
#: Table 3's columns -> the part of MGR-LF's ID that must match
PARTS = {"Text Only": "text@5", "Image Only": "image@5", "Multimodal": "whole@5"}
KEY = ["dataset", "variant", "condition", "seed"]


# ---------------------------------------------------------------- runs
def selected_runs(records: Sequence[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The learning rate with the best validation ``metric`` per (dataset, variant, condition, seed)."""
    groups: dict[tuple, list] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["model"], r["condition"], r["seed"]), []).append(r)
    return [select(rs, metric) for _, rs in sorted(groups.items())]


def runs_frame(selected: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "dataset": r["dataset"],
            "variant": r["model"],
            "condition": r["condition"],
            "seed": r["seed"],
            "params": r["params_id"],
            "status": r["status"],
            **r["test"],
            **{f"hits_by_part {k}": v for k, v in r.get("hits_by_part", {}).items()},
        }
        for r in selected
    ]
    return pd.DataFrame(rows)


def table5(runs: pd.DataFrame, metrics: Sequence[str], variants: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds of each (dataset, variant, condition); variants in study order."""
    out = runs.groupby(["dataset", "variant", "condition"], sort=False)[list(metrics)].mean().reset_index()
    out["variant"] = pd.Categorical(out["variant"], [v for v in variants if v in set(out["variant"])], ordered=True)
    return out.sort_values(["dataset", "condition", "variant"]).reset_index(drop=True)


def metric_names(topk: Sequence[int]) -> list[str]:
    return [f"{m}@{k}" for m in ("MRR", "NDCG", "HitRate") for k in topk]


# ---------------------------------------------------------------- published
def read_reference(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    path = require_file(path, "published table")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    return df


def _dataset_of(published: str, ours: Sequence[str]) -> str | None:
    """Our dataset named like a published one (case-insensitive), or None."""
    return next((d for d in ours if d.lower() == published.lower()), None)


def comparison(
    table: pd.DataFrame, published: pd.DataFrame, cutoff: int, diagnostics: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Baseline values beside Table 5's (ours at ``cutoff`` for MRR and NDCG, Hits@5 = HitRate@5) and,
    given the diagnostics (table, dataset, column, ours), beside Tables 1-3."""
    base = table[table["condition"] == "baseline"]
    ours_name = {"MRR": f"MRR@{cutoff}", "NDCG": f"NDCG@{cutoff}", "Hits@5": "HitRate@5"}
    rows = []
    for rec in published.itertuples(index=False):
        ds, variant = _dataset_of(rec.dataset, list(base["dataset"].unique())), PUBLISHED.get(rec.method)
        value = np.nan
        if ds is not None and variant is not None:
            hit = base[(base["dataset"] == ds) & (base["variant"] == variant)]
            value = float(hit[ours_name[rec.metric]].iloc[0]) if len(hit) else np.nan
        rows.append(
            {
                "table": "5",
                "dataset": rec.dataset,
                "method": rec.method,
                "metric": rec.metric,
                "ours_metric": ours_name[rec.metric] if variant else "",
                "published": rec.value,
                "ours": value,
            }
        )
    out = pd.DataFrame(rows)
    if diagnostics is not None and len(diagnostics):
        out = pd.concat([out, diagnostics], ignore_index=True)
    out["ratio"] = out["ours"] / out["published"]
    return out


def orderings(comp: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and Table 5 metric: the variants by published value and by ours, Kendall's tau and
    whether the best variant agrees (only datasets with ours for two or more variants)."""
    rows = []
    t5 = comp[(comp["table"] == "5") & comp["method"].isin(list(PUBLISHED)) & comp["ours"].notna()]
    for (ds, metric), part in t5.groupby(["dataset", "metric"], sort=False):
        if len(part) < 2:
            continue
        pub = part.sort_values("published", ascending=False)["method"].tolist()
        ours = part.sort_values("ours", ascending=False)["method"].tolist()
        tau = kendalltau(part["published"], part["ours"]).statistic
        rows.append(
            {
                "dataset": ds,
                "metric": metric,
                "published order": " > ".join(pub),
                "our order": " > ".join(ours),
                "kendall tau": tau,
                "same best": pub[0] == ours[0],
            }
        )
    return pd.DataFrame(rows, columns=["dataset", "metric", "published order", "our order", "kendall tau", "same best"])


# ---------------------------------------------------------------- semantic IDs
def sid_table(stats: Sequence[Mapping[str, Any]], keys: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for key, s in zip(keys, stats, strict=True):
        row = {k: key[k] for k in ("dataset", "sid_kind", "condition", "seed")}
        row.update({f"unique prefix rate L{i + 1}": v for i, v in enumerate(s["unique_prefix_rate"])})
        row.update({k: s[k] for k in ("distinct_ids", "colliding_items", "collision_rate", "max_group")})
        row.update(first_code_clusters=s["first_code_clusters"], ami_category=s["ami_category"])
        rows.append(row)
    return pd.DataFrame(rows)


def ami_table(
    codes: Sequence[np.ndarray], keys: Sequence[Mapping[str, Any]], stats: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """AMI of first-level codes between every pair of semantic-ID kinds (NaN when both collapse onto one
    code), and of each vs categories."""
    first: dict[tuple, dict[str, np.ndarray]] = {}
    rows = []
    for key, c, s in zip(keys, codes, stats, strict=True):
        group = (key["dataset"], key["condition"], key["seed"])
        first.setdefault(group, {})[key["sid_kind"]] = c[:, 0]
        if s["ami_category"] is not None:
            rows.append((*group, key["sid_kind"], "category", s["ami_category"]))
    for group, kinds in first.items():
        rows += [(*group, a, b, _ami(kinds[a], kinds[b])) for a, b in itertools.combinations(kinds, 2)]
    return pd.DataFrame(rows, columns=["dataset", "condition", "seed", "a", "b", "ami"])


def _ami(a: np.ndarray, b: np.ndarray) -> float:
    """AMI, undefined (NaN) when both labelings are one cluster (scikit-learn's convention says 1)."""
    return np.nan if len(np.unique(a)) == len(np.unique(b)) == 1 else adjusted_mutual_info(a, b)


def collapse_figure(sids: pd.DataFrame, conditions: Sequence[str], path: str | Path) -> None:
    """Unique-prefix rate per level, one line per condition; a panel per (dataset, semantic-ID kind)."""
    panels = list(sids.groupby(["dataset", "sid_kind"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    levels = [c for c in sids.columns if c.startswith("unique prefix rate L")]
    for ax, ((ds, kind), part) in zip(axes[0], panels, strict=True):
        for i, cond in enumerate(conditions):
            rows = part[part["condition"] == cond]
            if len(rows):
                style = {"marker": "os^vDx"[i % 6], "linestyle": ("-", "--", ":", "-.")[i % 4], "markersize": 7 - i % 4}
                ax.plot(range(1, len(levels) + 1), rows[levels].mean().to_numpy(), label=cond, **style)
        ax.set_yscale("log"), ax.set_ylim(top=1.05)
        ax.set_xticks(range(1, len(levels) + 1))
        ax.set_xlabel("code level"), ax.set_title(f"{display_dataset(ds)}: {kind}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("unique prefixes / items (log)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle("Semantic IDs under knockouts before quantisation", fontsize=10)
    save(fig, path)


def ami_figure(ami: pd.DataFrame, conditions: Sequence[str], path: str | Path) -> None:
    """A heatmap per dataset: conditions x pairs of code kinds (and each vs categories), mean over seeds."""
    ami = ami.assign(pair=ami["a"] + " vs " + ami["b"])
    datasets = list(dict.fromkeys(ami["dataset"])) or ["(none)"]
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.6 * len(datasets), 0.45 * len(conditions) + 1.8), squeeze=False
    )
    for ax, ds in zip(axes[0], datasets, strict=True):
        grid = ami[ami["dataset"] == ds].pivot_table(index="condition", columns="pair", values="ami", aggfunc="mean")
        grid = grid.reindex([c for c in conditions if c in grid.index])
        image = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=6, color="white")
        ax.set_title(f"{display_dataset(ds)}: AMI of first codes", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    save(fig, path)


# ---------------------------------------------------------------- diagnostics
def overlap_table(selected: Sequence[Mapping[str, Any]], predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Share of test users whose top-1 predictions coincide, for every pair of variants of a
    (dataset, condition, seed); ``predictions`` maps a run's ``_file`` to its top-1 items."""
    by: dict[tuple, dict[str, np.ndarray]] = {}
    for r in selected:
        by.setdefault((r["dataset"], r["condition"], r["seed"]), {})[r["model"]] = predictions[r["_file"]]
    rows = []
    for (ds, cond, seed), top1 in by.items():
        for a, b in itertools.combinations(top1, 2):
            rows.append(
                dict(dataset=ds, condition=cond, seed=seed, a=a, b=b, overlap=float((top1[a] == top1[b]).mean()))
            )
    return pd.DataFrame(rows, columns=["dataset", "condition", "seed", "a", "b", "overlap"])


def parts_table(runs: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in runs.columns if c.startswith("hits_by_part ")]
    out = runs[["dataset", "variant", "condition", "seed", *cols]].rename(
        columns=lambda c: c.removeprefix("hits_by_part ")
    )
    return (
        out.groupby(["dataset", "variant", "condition"], sort=False)
        .mean(numeric_only=True)
        .reset_index()
        .drop(columns="seed")
    )


def diagnostics_vs_published(
    published: pd.DataFrame, ami: pd.DataFrame, overlap: pd.DataFrame, parts: pd.DataFrame
) -> pd.DataFrame:
    """Our baseline counterparts of Tables 1-3 (NaN where a variant or kind was not run)."""

    def mean_pair(df: pd.DataFrame, ds: str, pair: tuple[str, str], value: str) -> float:
        base = df[(df["dataset"] == ds) & (df["condition"] == "baseline")]
        hit = base[
            ((base["a"] == pair[0]) & (base["b"] == pair[1])) | ((base["a"] == pair[1]) & (base["b"] == pair[0]))
        ]
        return float(hit[value].mean()) if len(hit) else np.nan

    rows = []
    for rec in published.itertuples(index=False):
        ds = _dataset_of(rec.dataset, list(set(ami["dataset"]) | set(parts["dataset"])))
        value = np.nan
        if ds is not None and str(rec.table) == "1":
            value = mean_pair(ami, ds, PAIRS[rec.column][0], "ami")
        elif ds is not None and str(rec.table) == "2":
            value = mean_pair(overlap, ds, PAIRS[rec.column][1], "overlap")
        elif ds is not None:
            lf = parts[(parts["dataset"] == ds) & (parts["condition"] == "baseline") & (parts["variant"] == "MGR-LF")]
            value = float(lf[PARTS[rec.column]].iloc[0]) if len(lf) and PARTS[rec.column] in lf else np.nan
        rows.append(
            {
                "table": str(rec.table),
                "dataset": rec.dataset,
                "method": rec.quantity,
                "metric": rec.column,
                "ours_metric": rec.column,
                "published": rec.value,
                "ours": value,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- knockouts
def knockout_change(
    table: pd.DataFrame, ranking: pd.DataFrame, feature_set: str, models: Sequence[str], cutoff: int
) -> pd.DataFrame:
    """Change (%) vs the baseline of MRR and NDCG at ``cutoff`` per variant and condition, and of NDCG
    for the ranking models (the knockout table, the same feature set, mean over seeds)."""
    ndcg, mrr = f"NDCG@{cutoff}", f"MRR@{cutoff}"
    rows = []
    for (ds, variant), part in table.groupby(["dataset", "variant"], sort=False, observed=True):
        base = part[part["condition"] == "baseline"][[mrr, ndcg]].mean()
        for cond, values in part.groupby("condition", sort=False)[[mrr, ndcg]].mean().iterrows():
            change = {f"{m} change %": _change(values[m], base[m]) for m in (mrr, ndcg)}
            rows.append({"dataset": ds, "kind": "generative", "model": variant, "condition": cond, **change})
    ok = ranking[(ranking["status"] == "ok") & (ranking["feature_set"] == feature_set) & ranking["model"].isin(models)]
    if f"{ndcg} change %" in ok.columns:
        means = ok.groupby(["dataset", "model", "condition"], sort=False)[f"{ndcg} change %"].mean().reset_index()
        for rec in means.itertuples(index=False):
            rows.append(
                {
                    "dataset": rec.dataset,
                    "kind": "ranking",
                    "model": rec.model,
                    "condition": rec.condition,
                    f"{mrr} change %": np.nan,
                    f"{ndcg} change %": rec[3],
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "kind", "model", "condition", f"{mrr} change %", f"{ndcg} change %"])


def _change(value: float, base: float) -> float:
    """(value - base) / base in %, NaN for a zero baseline; rounded so that equal values give +0."""
    return round(100 * (value - base) / base, 10) + 0.0 if base else np.nan


def knockout_figure(change: pd.DataFrame, conditions: Sequence[str], cutoff: int, path: str | Path) -> None:
    """Grouped bars of the NDCG change per model (generative variants first), one bar per condition."""
    col = f"NDCG@{cutoff} change %"
    conds = [c for c in conditions if c != "baseline"]
    datasets = list(dict.fromkeys(change["dataset"])) or ["(none)"]
    fig, axes = plt.subplots(
        len(datasets), 1, figsize=(max(6.0, 0.7 * change["model"].nunique() + 2), 3.2 * len(datasets)), squeeze=False
    )
    for ax, ds in zip(axes[:, 0], datasets, strict=True):
        part = change[change["dataset"] == ds]
        models = list(dict.fromkeys(part.sort_values("kind", kind="stable")["model"]))
        width = 0.8 / max(len(conds), 1)
        for i, cond in enumerate(conds):
            vals = [part.loc[(part["model"] == m) & (part["condition"] == cond), col].mean() for m in models]
            ax.bar(np.arange(len(models)) + i * width - 0.4 + width / 2, vals, width, label=cond)
        n_gen = int((part.drop_duplicates("model")["kind"] == "generative").sum())
        if 0 < n_gen < len(models):
            ax.axvline(n_gen - 0.5, color="black", linewidth=0.8, linestyle=":")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(f"{col.replace(' change %', '')} change vs baseline (%)")
        ax.set_title(f"{display_dataset(ds)}: generative variants (left) and ranking models (right)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    save(fig, path)


# ---------------------------------------------------------------- steps
def sids_step(
    *,
    stats: Sequence[str],
    codes: Sequence[str],
    sid_keys: Sequence[Mapping[str, Any]],
    conditions: Sequence[str],
    sid_table_file: str,
    ami_file: str,
    collapse_file: str,
    ami_figure_file: str,
) -> None:
    """Workflow step: the semantic-ID statistics and AMI tables and their figures; ``stats`` and ``codes``
    are the files behind ``sid_keys``."""
    from ..arrays import load_npy

    records = [read_json(p) for p in stats]
    table = sid_table(records, sid_keys)
    ami = ami_table([load_npy(p, "semantic IDs") for p in codes], sid_keys, records)
    write_csv(table, sid_table_file)
    write_csv(ami, ami_file)
    collapse_figure(table, conditions, collapse_file)
    ami_figure(ami, conditions, ami_figure_file)


def tables_step(
    *,
    records: Sequence[str],
    predictions: Sequence[str],
    run_keys: Sequence[Mapping[str, Any]],
    reference: str,
    diagnostics_reference: str,
    ami_file: str,
    knockout: str,
    table: str,
    comparison_file: str,
    orderings_file: str,
    overlap_file: str,
    parts_file: str,
    knockout_file: str,
    knockout_figure_file: str,
    valid_metric: str,
    topk: Sequence[int],
    variants: Sequence[str],
    conditions: Sequence[str],
    feature_set: str,
    ranking_models: Sequence[str],
) -> None:
    """Workflow step: Table 5, ours vs published with the orderings, the diagnostics and the knockout change.
    ``records`` and ``predictions`` are the files behind ``run_keys`` (a condition that does not touch a
    variant's modalities names the baseline's files)."""
    if not len(records) == len(predictions) == len(run_keys):
        raise InputError("zhu2025 tables: one record and one predictions file per run key are needed")
    runs_in = [
        {**read_json(p), "condition": key["condition"], "_file": i}
        for i, (p, key) in enumerate(zip(records, run_keys, strict=True))
    ]
    chosen = selected_runs(runs_in, valid_metric)
    top1 = {}
    for i, pred_path in enumerate(predictions):
        with np.load(require_file(pred_path, "predictions"), allow_pickle=False) as z:
            top1[i] = z["items"][:, 0]
    runs = runs_frame(chosen)
    cutoff = max(topk)
    t5 = table5(runs, metric_names(topk), variants)
    overlap = overlap_table(chosen, top1)
    parts = parts_table(runs)
    diag = diagnostics_vs_published(
        read_reference(diagnostics_reference, ["table", "dataset", "quantity", "column", "value"]),
        pd.read_csv(ami_file),
        overlap,
        parts,
    )
    comp = comparison(t5, read_reference(reference, ["dataset", "method", "metric", "value"]), cutoff, diag)
    change = knockout_change(t5, read_knockout(knockout), feature_set, ranking_models, cutoff)
    write_csv(t5, table)
    write_csv(comp, comparison_file)
    write_csv(orderings(comp), orderings_file)
    write_csv(overlap, overlap_file)
    write_csv(parts, parts_file)
    write_csv(change, knockout_file)
    knockout_figure(change, conditions, cutoff, knockout_figure_file)
