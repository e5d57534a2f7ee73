"""The study's tables from the knockout table and the significance table.

* :func:`seed_summary`: mean and 95 % t-interval over seeds per (dataset, feature set, model,
  condition), the change vs baseline from the rounded means (the study's rule), the t-interval of
  the paired per-seed differences and whether it includes 0, and the seeds that hit the epoch cap.
* Marks: ``†`` a run that stopped at the epoch cap (``training.epochs``) instead of by early
  stopping, in at least one seed (still improving, or never stable for ``patience`` epochs);
  ``°`` a change whose 95 % interval over seeds includes 0 (:mod:`.stats`).
* Table 2 (:func:`vision_sensitive`), Table 3 (:func:`knockout_comparison`): baseline / knockout /
  change with the paired tests of :mod:`.stats` next to the percentage.
* Appendix Tables 4-10 (:func:`appendix_table`) in the layout of ``resources/reference``.
* :func:`ours_vs_published`: every cell we have next to the published one.
* :func:`encoder_swap`: each model's baseline across feature sets (image encoders).

Every writer uses fixed float formats and sorted rows, so equal inputs give equal bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import write_text
from ..models.registry import FAMILIES, FEATURE_FREE, MODELS
from .plots import display_dataset
from .stats import EPOCH_CAP, GROUP, change_pct, ci95, format_p, mean, paired_change_interval, sort_frame

APPENDIX_METRICS = ["NDCG@5", "NDCG@10", "Recall@5", "Recall@10", "Precision@5", "Precision@10"]
STUDY_METRICS = ["NDCG@10", "Precision@10", "Recall@10"]
KNOCKOUT_CONDITIONS = ["text-noise", "image-noise", "dual-noise"]
TABLE3_MODELS = ["BM3", "SLMRec", "VBPR"]
DEFAULT_THRESHOLD = 5.0
CAPPED_MARK = "†"
NOISE_MARK = "°"
CAPPED_NOTE = f"{CAPPED_MARK} stopped at the epoch cap (training.epochs) in at least one seed, not by early stopping"
NOISE_NOTE = f"{NOISE_MARK} the 95% t-interval over seeds of the paired difference includes 0 (p over seeds >= 0.05)"


# ---------------------------------------------------------------- helpers


def main_feature_set(feature_sets: Sequence[str]) -> str:
    """The feature set the knockout tables use: ``default`` if configured, else the first one."""
    if not feature_sets:
        raise InputError("a dataset lists no feature sets")
    return "default" if "default" in feature_sets else feature_sets[0]


def read_knockout(path: str | Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read knockout table {path}: {exc}") from None
    missing = [c for c in GROUP + ["seed", "status"] if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {', '.join(missing)}")
    return df


def fmt_float(x: float, decimals: int = 4) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{decimals}f}"


def fmt_change(x: float) -> str:
    """'+2.4', '-7.7', '+0.0' (a rounded zero is '+0.0', like the study); '' if undefined."""
    if x is None or not np.isfinite(x):
        return ""
    x = round(float(x), 1)
    return f"+{abs(x):.1f}" if x == 0 else f"{x:+.1f}"


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """CSV with every float as written by the caller (strings) or with 4 decimals; NaN as empty."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f", na_rep="", lineterminator="\n")


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    CAPPED_MARK: r"\textsuperscript{\dag}",
    NOISE_MARK: r"$^{\circ}$",
    "<": r"$<$",
    ">": r"$>$",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(s))


def to_latex(
    df: pd.DataFrame,
    caption: str,
    label: str,
    align: str | None = None,
    note: str | None = None,
    header: Sequence[str] | None = None,
) -> str:
    """A self-contained booktabs ``table`` (strings are escaped; NaN cells print as '--')."""
    cols = list(df.columns)
    align = align or ("ll" + "r" * (len(cols) - 2) if len(cols) > 2 else "l" * len(cols))
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
    ]
    lines.append(" & ".join(latex_escape(h) for h in (header or cols)) + r" \\")
    lines.append(r"\midrule")
    if df.empty:
        lines.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(note or 'no rows')}}} \\")
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append("--" if not np.isfinite(v) else f"{v:.4f}")
            else:
                cells.append(latex_escape(v) if str(v) != "" else "--")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note and not df.empty:
        lines.append(rf"\par\footnotesize {latex_escape(note)}")
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- seed summary


def seed_summary(ko: pd.DataFrame, metrics: Sequence[str] = APPENDIX_METRICS) -> pd.DataFrame:
    """Per (dataset, feature set, model, condition): n_seeds, n_ok, n_capped (seeds stopped at the
    epoch cap), mean and ci95 of each metric, ``<m> change %`` of the rounded means vs the baseline
    of the same dataset/feature set/model, ``<m> change % ci95`` (the half-width of the t-interval
    of the paired per-seed differences, in % of the mean baseline) and ``<m> change % includes 0``
    (None with fewer than two seeds); see :func:`.stats.paired_change_interval`."""
    missing = [m for m in metrics if m not in ko.columns]
    if missing:
        raise InputError(f"knockout table lacks metric columns {', '.join(missing)}")
    ko = ko.reset_index(drop=True)
    ko = ko.assign(**{m: ko[m].where(ko["status"] == "ok").astype(float) for m in metrics})
    base_of_seed = ko.loc[ko["condition"] == "baseline", ["dataset", "feature_set", "model", "seed", *metrics]]
    paired = ko.merge(base_of_seed, on=["dataset", "feature_set", "model", "seed"], how="left", suffixes=("", " b"))
    stop = ko["stop_reason"] if "stop_reason" in ko.columns else pd.Series("", index=ko.index)
    ko = ko.assign(_capped=(stop == EPOCH_CAP).to_numpy())
    rows = []
    for key, part in ko.groupby(GROUP, sort=True):
        row = dict(zip(GROUP, key, strict=True))
        row["family"] = FAMILIES.get(row["model"], "user-defined")
        row["n_seeds"] = int(part["seed"].nunique())
        row["n_ok"] = int((part["status"] == "ok").sum())
        row["n_capped"] = int(part["_capped"].sum())
        row["epoch_cap"] = float(part["epoch_cap"].max()) if "epoch_cap" in part.columns else math.nan
        pairs = paired.loc[part.index]
        for m in metrics:
            vals = part[m].tolist()
            row[m] = mean(vals)
            row[f"{m} ci95"] = ci95(vals)
            interval = (
                (math.nan, None)
                if row["condition"] == "baseline"
                else paired_change_interval(pairs[f"{m} b"], pairs[m])
            )
            row[f"{m} change % ci95"], row[f"{m} change % includes 0"] = interval
        rows.append(row)
    df = pd.DataFrame(rows)
    base = df[df["condition"] == "baseline"].set_index(["dataset", "feature_set", "model"])
    for m in metrics:
        ref = [
            base[m].get((d, f, mo), math.nan)
            for d, f, mo in zip(df["dataset"], df["feature_set"], df["model"], strict=True)
        ]
        df[f"{m} change %"] = [change_pct(b, k) for b, k in zip(ref, df[m], strict=True)]
    return sort_frame(df, ["baseline"] + KNOCKOUT_CONDITIONS)


def capped_cell(n_capped: float, n_seeds: float) -> str:
    """'2/5' seeds stopped at the epoch cap, '' if none."""
    n = 0 if n_capped is None or not np.isfinite(n_capped) else int(n_capped)
    return f"{n}/{int(n_seeds)}" if n else ""


# ---------------------------------------------------------------- Tables 2 and 3


def _annotated(
    change: float, ci: float, p_users: float, p_seeds: float, n_seeds: int, includes_zero: bool | None = None
) -> str:
    if change is None or not np.isfinite(change):
        return "n/a"
    text = f"{fmt_change(change)}%"
    if n_seeds > 1 and np.isfinite(ci):
        text = f"{fmt_change(change)}±{ci:.1f}%"
    if includes_zero is True:
        text += NOISE_MARK
    if n_seeds > 1:
        return f"{text} (users {format_p(p_users)}; seeds {format_p(p_seeds)})"
    return f"{text} ({format_p(p_users)})"


def comparison_columns(metrics: Sequence[str], several_seeds: bool) -> list[str]:
    cols = ["capped baseline", "capped knockout"]
    for m in metrics:
        cols += [f"{m} baseline"] + ([f"{m} baseline ci95"] if several_seeds else [])
        cols += [f"{m} knockout"] + ([f"{m} knockout ci95"] if several_seeds else [])
        cols += [f"{m} change %"] + ([f"{m} change % ci95"] if several_seeds else [])
        cols += [f"{m} change", f"{m} p (users)"] + ([f"{m} p (seeds)"] if several_seeds else [])
        cols += [f"{m} interval includes 0"] if several_seeds else []
    return cols


def knockout_comparison(
    sig: pd.DataFrame,
    models: Sequence[str],
    conditions: Sequence[str],
    metrics: Sequence[str] = STUDY_METRICS,
    feature_sets: Mapping[str, str] | None = None,
    model_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Baseline / knockout / change (with p-values) per model, dataset and condition, from significance rows.

    ``feature_sets`` maps dataset -> the feature set to use (default: every row's own). ``capped
    baseline`` / ``capped knockout``: seeds stopped at the epoch cap ('1/3', '' if none); with
    several seeds, ``<m> interval includes 0`` ('yes'/'no') and the change marked ``°`` when yes."""
    df = sig[sig["model"].isin(models) & sig["condition"].isin(conditions) & sig["metric"].isin(metrics)]
    if feature_sets is not None:
        df = df.loc[_main_rows(df, feature_sets)]
    several = bool(len(df)) and int(df["n_seeds"].max()) > 1
    key = ["model", "dataset", "condition"]
    columns = key + ["n_seeds"] + comparison_columns(metrics, several)
    rows = []
    for (model, dataset, cond), part in df.groupby(key, sort=False):
        row = {
            "model": model,
            "dataset": display_dataset(dataset),
            "condition": cond,
            "n_seeds": int(part["n_seeds"].max()),
            "capped baseline": capped_cell(part["n_capped_baseline"].max(), part["n_seeds"].max()),
            "capped knockout": capped_cell(part["n_capped_knockout"].max(), part["n_seeds"].max()),
        }
        for m in metrics:
            r = part[part["metric"] == m]
            if r.empty:
                continue
            r = r.iloc[0]
            row[f"{m} baseline"] = fmt_float(r["mean_baseline"])
            row[f"{m} knockout"] = fmt_float(r["mean_knockout"]) if np.isfinite(r["mean_knockout"]) else "diverged"
            row[f"{m} change %"] = fmt_change(r["change %"])
            zero = _bool_or_none(r["interval_includes_zero"])
            row[f"{m} change"] = _annotated(
                r["change %"], r["ci95"], r["p_users"], r["p_seeds"], int(r["n_seeds"]), zero
            )
            row[f"{m} p (users)"] = _p_cell(r["p_users"])
            if several:
                row[f"{m} baseline ci95"] = fmt_float(r["ci95_baseline"])
                row[f"{m} knockout ci95"] = fmt_float(r["ci95_knockout"])
                row[f"{m} change % ci95"] = fmt_float(r["ci95"], 1)
                row[f"{m} p (seeds)"] = _p_cell(r["p_seeds"])
                row[f"{m} interval includes 0"] = "" if zero is None else ("yes" if zero else "no")
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns).fillna("")
    order = list(model_order or MODELS)
    rank_m = {m: i for i, m in enumerate(order)}
    rank_c = {c: i for i, c in enumerate(conditions)}
    out = out.assign(
        _m=out["model"].map(lambda m: rank_m.get(m, len(rank_m))),
        _c=out["condition"].map(lambda c: rank_c.get(c, len(rank_c))),
    )
    out = out.sort_values(["_m", "model", "dataset", "_c"], kind="stable").drop(columns=["_m", "_c"])
    return out.reset_index(drop=True)


def _main_rows(df: pd.DataFrame, feature_sets: Mapping[str, str]) -> np.ndarray:
    """Boolean row mask: the rows whose feature set is the one named for their dataset (works when empty)."""
    return np.array(
        [feature_sets.get(d) == f for d, f in zip(df["dataset"], df["feature_set"], strict=True)], dtype=bool
    )


def _bool_or_none(x) -> bool | None:
    """True/False, or None for a missing value (NaN, None)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else bool(x)


def _p_cell(p: float) -> str:
    return "" if p is None or not np.isfinite(p) else f"{p:.3g}"


def vision_sensitive(
    sig: pd.DataFrame,
    feature_sets: Mapping[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    condition: str = "image-noise",
    metrics: Sequence[str] = STUDY_METRICS,
) -> pd.DataFrame:
    """Table 2: models whose NDCG@10 drops by more than ``threshold`` % under ``condition`` on any dataset
    (all their datasets are shown). A diverged knockout counts as a drop."""
    df = sig[(sig["condition"] == condition) & (sig["metric"] == "NDCG@10")]
    if feature_sets is not None:
        df = df.loc[_main_rows(df, feature_sets)]
    dropped = (df["change %"] < -threshold) | (df["mean_knockout"].isna() & df["mean_baseline"].notna())
    models = sorted(set(df.loc[dropped, "model"]))
    out = knockout_comparison(sig, models, [condition], metrics, feature_sets)
    return out.drop(columns=["condition"])


def bm3_slmrec_vbpr(
    sig: pd.DataFrame, feature_sets: Mapping[str, str] | None = None, metrics: Sequence[str] = STUDY_METRICS
) -> pd.DataFrame:
    """Table 3: BM3, SLMRec and VBPR (those run) under text, image and dual noise."""
    return knockout_comparison(
        sig, TABLE3_MODELS, KNOCKOUT_CONDITIONS, metrics, feature_sets, model_order=TABLE3_MODELS
    )


def comparison_latex(
    df: pd.DataFrame, caption: str, label: str, metrics: Sequence[str] = STUDY_METRICS, note: str | None = None
) -> str:
    """Compact LaTeX of Table 2/3: per metric baseline, knockout and the annotated change; a baseline or
    knockout that stopped at the epoch cap is marked ``†``, with the marks explained under the table."""
    keep = [c for c in ("model", "dataset", "condition") if c in df.columns]
    cols, header = list(keep), [c.capitalize() for c in keep]
    for m in metrics:
        cols += [f"{m} baseline", f"{m} knockout", f"{m} change"]
        header += [f"{m} base", f"{m} KO", f"{m} change"]
    sub = df.reindex(columns=cols).fillna("")
    for side in ("baseline", "knockout"):
        capped = df.get(f"capped {side}", pd.Series("", index=df.index)).fillna("").astype(str) != ""
        for m in metrics:
            col = f"{m} {side}"
            sub.loc[capped & (sub[col] != ""), col] = sub.loc[capped & (sub[col] != ""), col] + CAPPED_MARK
    notes = [note] if note else []
    text = " ".join(sub.astype(str).to_numpy().ravel())
    notes += [n for mark, n in ((CAPPED_MARK, CAPPED_NOTE), (NOISE_MARK, NOISE_NOTE)) if mark in text]
    return to_latex(
        sub,
        caption,
        label,
        align="l" * len(keep) + "r" * (len(cols) - len(keep)),
        note="; ".join(notes) or None,
        header=header,
    )


# ---------------------------------------------------------------- Appendix Tables 4-10


def read_reference_index(path: str | Path) -> pd.DataFrame:
    """resources/reference/tables.csv: table number -> condition (or feature set) and title."""
    df = pd.read_csv(path, dtype={"table": int, "condition": str, "title": str})
    return df.sort_values("table").reset_index(drop=True)


def appendix_table(
    summary: pd.DataFrame,
    datasets: Mapping[str, str],
    condition: str = "baseline",
    reference: Mapping[str, str] | None = None,
    metrics: Sequence[str] = APPENDIX_METRICS,
    with_change: bool | None = None,
) -> pd.DataFrame:
    """One Appendix table in the reference layout.

    ``datasets`` maps each dataset to the feature set whose ``condition`` rows are shown;
    ``reference`` maps each dataset to the feature set whose *baseline* the change is computed against
    (default: the same). Only the multimodal models, sorted by model name then dataset name. Columns:
    model, dataset, the metrics (4 decimals; empty if every seed diverged), then ``<m> change %`` as
    '+x.x' (tables 5+), then ``<m> ci95`` (and, with a change, ``<m> change % includes 0``:
    'yes'/'no') when there are several seeds, then, when a run stopped at the epoch cap, ``capped``:
    the seeds whose run did ('1/5', '' if none).
    """
    reference = dict(reference or datasets)
    with_change = (condition != "baseline" or reference != dict(datasets)) if with_change is None else with_change
    sel = summary.loc[_main_rows(summary, datasets)]
    sel = sel[(sel["condition"] == condition) & ~sel["model"].isin(FEATURE_FREE)]
    base = summary.loc[_main_rows(summary, reference)]
    base = base[base["condition"] == "baseline"].set_index(["dataset", "model"])
    several = bool(len(sel)) and int(sel["n_seeds"].max()) > 1
    rows = []
    for _, r in sel.iterrows():
        row = {"model": r["model"], "dataset": display_dataset(r["dataset"])}
        for m in metrics:
            row[m] = fmt_float(r[m])
        if with_change:
            for m in metrics:
                b = base[m].get((r["dataset"], r["model"]), math.nan)
                row[f"{m} change %"] = fmt_change(change_pct(b, r[m]))
        if several:
            for m in metrics:
                row[f"{m} ci95"] = fmt_float(r[f"{m} ci95"])
                if with_change:
                    row[f"{m} change % includes 0"] = _yes_no(r.get(f"{m} change % includes 0"))
        row["capped"] = capped_cell(r.get("n_capped", 0), r["n_seeds"])
        rows.append(row)
    columns = (
        ["model", "dataset"]
        + list(metrics)
        + ([f"{m} change %" for m in metrics] if with_change else [])
        + ([f"{m} ci95" for m in metrics] if several else [])
        + ([f"{m} change % includes 0" for m in metrics] if several and with_change else [])
        + (["capped"] if any(row["capped"] for row in rows) else [])
    )
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["model", "dataset"], kind="stable").reset_index(drop=True)


def appendix_latex(df: pd.DataFrame, caption: str, label: str, metrics: Sequence[str] = APPENDIX_METRICS) -> str:
    """The Appendix layout: 'value (+x.x%)', or 'mean±ci (+x.x%)' with several seeds; a model whose run
    stopped at the epoch cap is marked ``†``, a change whose interval includes 0 ``°``."""
    capped = df["capped"].fillna("").astype(str) != "" if "capped" in df.columns else pd.Series(False, index=df.index)
    cells = pd.DataFrame({"model": df["model"].where(~capped, df["model"] + CAPPED_MARK), "dataset": df["dataset"]})
    for m in metrics:
        col = []
        for _, r in df.iterrows():
            v = r[m] if r[m] != "" else "diverged"
            if f"{m} ci95" in df.columns and r[f"{m} ci95"] != "":
                v = f"{v}±{r[f'{m} ci95']}"
            if f"{m} change %" in df.columns and r[f"{m} change %"] != "":
                zero = NOISE_MARK if r.get(f"{m} change % includes 0") == "yes" else ""
                v = f"{v} ({r[f'{m} change %']}%{zero})"
            col.append(v)
        cells[m] = col
    text = " ".join(cells.astype(str).to_numpy().ravel())
    notes = [n for mark, n in ((CAPPED_MARK, CAPPED_NOTE), (NOISE_MARK, NOISE_NOTE)) if mark in text]
    return to_latex(
        cells,
        caption,
        label,
        header=["Model", "Dataset"] + list(metrics),
        note="no runs for this table" if df.empty else ("; ".join(notes) or None),
    )


def _yes_no(x) -> str:
    zero = _bool_or_none(x)
    return "" if zero is None else ("yes" if zero else "no")


def read_reference_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ---------------------------------------------------------------- ours vs published

COMPARISON_COLUMNS = [
    "table",
    "condition",
    "model",
    "dataset",
    "metric",
    "ours",
    "ours ci95",
    "published",
    "abs diff",
    "rel diff %",
    "ours change %",
    "published change %",
]


def ours_vs_published(
    ours: Mapping[int, pd.DataFrame],
    published: Mapping[int, pd.DataFrame],
    conditions: Mapping[int, str],
    metrics: Sequence[str] = APPENDIX_METRICS,
) -> pd.DataFrame:
    """Every (table, model, dataset, metric) cell present in both our Appendix table and the published one.

    ``ours`` and ``published`` map table number -> frames in the reference layout (strings); datasets
    match case-insensitively. abs diff = ours - published; rel diff % = abs diff / published * 100.
    """
    rows = []
    for table in sorted(set(ours) & set(published)):
        a = ours[table].copy()
        b = published[table].copy()
        if a.empty or b.empty:
            continue
        a["_d"] = a["dataset"].str.lower()
        b["_d"] = b["dataset"].str.lower()
        merged = a.merge(b, on=["model", "_d"], suffixes=("", " pub"))
        for _, r in merged.iterrows():
            for m in metrics:
                ours_v = _num(r.get(m))
                pub_v = _num(r.get(f"{m} pub"))
                if not (np.isfinite(ours_v) and np.isfinite(pub_v)):
                    continue
                diff = ours_v - pub_v
                rows.append(
                    {
                        "table": table,
                        "condition": conditions.get(table, ""),
                        "model": r["model"],
                        "dataset": r["dataset pub"],
                        "metric": m,
                        "ours": f"{ours_v:.4f}",
                        "ours ci95": str(r.get(f"{m} ci95", "") or ""),
                        "published": f"{pub_v:.4f}",
                        "abs diff": f"{diff:+.4f}",
                        "rel diff %": fmt_change(diff / pub_v * 100) if pub_v != 0 else "",
                        "ours change %": str(r.get(f"{m} change %", "") or ""),
                        "published change %": str(r.get(f"{m} change % pub", "") or ""),
                    }
                )
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    order = {m: i for i, m in enumerate(metrics)}
    out = out.assign(_k=out["metric"].map(order))
    return out.sort_values(["table", "model", "dataset", "_k"], kind="stable").drop(columns="_k").reset_index(drop=True)


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- encoder swap


def encoder_swap_table(
    summary: pd.DataFrame, feature_sets: Mapping[str, Sequence[str]], metrics: Sequence[str] = STUDY_METRICS
) -> pd.DataFrame:
    """Each model's baseline metrics per feature set (image encoder), with the change vs the dataset's
    main feature set. ``feature_sets`` maps dataset -> its feature sets (main first)."""
    base = summary[summary["condition"] == "baseline"]
    all_fs = list(dict.fromkeys(f for fss in feature_sets.values() for f in fss))
    several = bool(len(base)) and int(base["n_seeds"].max()) > 1
    non_main = {f for fss in feature_sets.values() for f in list(fss)[1:]}
    columns = ["dataset", "model", "family"]
    for fs in all_fs:
        for m in metrics:
            columns.append(f"{m} {fs}")
            if several:
                columns.append(f"{m} {fs} ci95")
            if fs in non_main:
                columns.append(f"{m} {fs} change %")
    rows = []
    for dataset in sorted(feature_sets):
        fss = list(feature_sets[dataset])
        main = fss[0]
        part = base[base["dataset"] == dataset].set_index(["feature_set", "model"])
        models = [m for m in MODELS if any((f, m) in part.index for f in fss)]
        models += sorted({m for _, m in part.index} - set(models))
        for model in models:
            row = {"dataset": display_dataset(dataset), "model": model, "family": FAMILIES.get(model, "user-defined")}
            for fs in fss:
                if (fs, model) not in part.index:
                    continue
                r = part.loc[(fs, model)]
                for m in metrics:
                    row[f"{m} {fs}"] = fmt_float(r[m])
                    if several:
                        row[f"{m} {fs} ci95"] = fmt_float(r[f"{m} ci95"])
                    if fs != main and (main, model) in part.index:
                        row[f"{m} {fs} change %"] = fmt_change(change_pct(part.loc[(main, model)][m], r[m]))
            rows.append(row)
    return pd.DataFrame(rows, columns=columns).fillna("")


# ---------------------------------------------------------------- entry points (CLI / workflow)


def appendix_spec(
    table: int, index: pd.DataFrame, feature_sets: Mapping[str, Sequence[str]]
) -> tuple[str, dict, dict, str]:
    """(condition, shown feature set per dataset, reference feature set per dataset, title) of an Appendix table.

    The table's name in tables.csv is a condition (Tables 4-9) or, for the encoder tables, a feature
    set (Table 10: ``vit``) whose baseline is compared with the main feature set's baseline."""
    row = index[index["table"] == int(table)]
    if row.empty:
        raise InputError(f"table {table} is not listed in the reference index")
    name, title = row.iloc[0]["condition"], row.iloc[0]["title"]
    main = {d: main_feature_set(list(f)) for d, f in feature_sets.items()}
    if any(name in fss for fss in feature_sets.values()) and name not in main.values():
        shown = {d: name for d, fss in feature_sets.items() if name in fss}
        return "baseline", shown, {d: main[d] for d in shown}, title
    return name, main, main, title


def build_appendix(
    *, knockout: str, index: str, feature_sets: Mapping[str, Sequence[str]], table: int, csv: str, tex: str
) -> pd.DataFrame:
    """Workflow step: one Appendix table (4-10) in the published layout, CSV and LaTeX."""
    condition, shown, ref, title = appendix_spec(int(table), read_reference_index(index), feature_sets)
    summary = seed_summary(read_knockout(knockout))
    df = appendix_table(summary, shown, condition, ref)
    write_csv(df, csv)
    write_text(tex, appendix_latex(df, f"Appendix Table {table}: {title} (this reproduction)", f"tab:appendix{table}"))
    return df


def build_study_tables(
    *,
    knockout: str,
    significance: str,
    feature_sets: Mapping[str, Sequence[str]],
    threshold: float,
    table2: str,
    table2_tex: str,
    table3: str,
    table3_tex: str,
    encoder_swap: str,
) -> None:
    """Workflow step: Table 2 (vision-sensitive models), Table 3 and the encoder-swap table."""
    from .stats import read_significance

    sig = read_significance(significance)
    main = {d: main_feature_set(list(f)) for d, f in feature_sets.items()}
    t2 = vision_sensitive(sig, main, threshold)
    write_csv(t2, table2)
    note = (
        f"No model loses more than {threshold:g}% NDCG@10 under image noise (or no image-noise runs)."
        if t2.empty
        else "p: Wilcoxon signed-rank test on per-user test values."
    )
    write_text(
        table2_tex,
        comparison_latex(
            t2,
            f"Table 2: vision-sensitive models (NDCG@10 drop > {threshold:g}% under image noise on any dataset)",
            "tab:vision",
            note=note,
        ),
    )
    t3 = bm3_slmrec_vbpr(sig, main)
    write_csv(t3, table3)
    write_text(
        table3_tex,
        comparison_latex(
            t3,
            "Table 3: BM3, SLMRec and VBPR under text, image and dual knockout (noise)",
            "tab:bm3slmrecvbpr",
            note="none of BM3, SLMRec, VBPR under noise knockouts" if t3.empty else None,
        ),
    )
    summary = seed_summary(read_knockout(knockout), STUDY_METRICS)
    ordered = {d: [main[d]] + [f for f in fss if f != main[d]] for d, fss in feature_sets.items()}
    write_csv(encoder_swap_table(summary, ordered), encoder_swap)


def table_number(path: str | Path) -> int:
    """The Appendix table number from a file name like ``table5_dual-noise.csv``."""
    import re

    m = re.match(r"table(\d+)_", Path(path).name)
    if not m:
        raise InputError(f"not an Appendix table file name: {path}")
    return int(m.group(1))


def build_comparison(
    *, ours: Sequence[str], index: str, published: Sequence[str], table: str, figure: str, datasets: Sequence[str] = ()
) -> pd.DataFrame:
    """Workflow step: every cell of our Appendix tables next to the published one (table and scatter)."""
    from . import plots

    conditions = dict(zip(*(read_reference_index(index)[c] for c in ("table", "condition")), strict=True))
    ours_tables = {table_number(p): read_reference_table(p) for p in ours}
    published_tables = {table_number(p): read_reference_table(p) for p in published}
    missing = sorted(n for n in ours_tables if n in conditions and n not in published_tables)
    if missing:
        raise InputError(f"no published table given for Appendix table(s) {missing}")
    comp = ours_vs_published(ours_tables, published_tables, conditions)
    write_csv(comp, table)
    plots.ours_vs_published(comp, figure, [display_dataset(d) for d in datasets])
    return comp


def build_fig1(*, knockout: str, figure: str, dataset: str, feature_set: str) -> None:
    """Workflow step: Fig. 1, NDCG@10 and Recall@10 per model under the noise knockouts."""
    from . import plots

    plots.fig1_knockout(seed_summary(read_knockout(knockout), ["NDCG@10", "Recall@10"]), dataset, feature_set, figure)


def build_fig2(*, knockout: str, figure: str, feature_sets: Mapping[str, Sequence[str]], metric: str) -> None:
    """Workflow step: Fig. 2, dual noise vs dual constants, change vs baseline."""
    from . import plots

    main = {d: main_feature_set(list(f)) for d, f in feature_sets.items()}
    plots.fig2_noise_vs_constant(seed_summary(read_knockout(knockout), [metric]), main, figure, metric=metric)
