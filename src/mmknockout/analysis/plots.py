"""Every figure of the study: knockout changes, Figs. 1-4 and the ours-vs-published scatter.

Drawn with matplotlib's Agg backend and saved byte-stably (no dates or software versions in the
file's metadata), so equal inputs give equal bytes. A bar whose run stopped at the epoch cap
(``training.epochs``) instead of by early stopping, in at least one seed, carries a ``†`` and the
figure says so under its title. With several seeds, Fig. 1's error bars are the 95 % t-interval
of the mean over seeds, Fig. 2's that of the paired difference over seeds (in % of the mean
baseline, :func:`.stats.paired_change_interval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..models.registry import FAMILIES, MODELS  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "mmknockout", "figure.dpi": 110, "font.size": 9})

PAPER_DATASETS = {"baby": "Baby", "sports": "Sports", "clothing": "Clothing"}


def bottom_legend(fig: plt.Figure, handles: Sequence, labels: Sequence[str], title: str) -> None:
    """One legend row under all panels."""
    kw = {"ncol": len(labels), "fontsize": 8, "loc": "lower center", "bbox_to_anchor": (0.5, -0.02), "frameon": False}
    fig.legend(handles, labels, title=title, **kw)


CAPPED_MARK = "†"


def mark_capped(ax: plt.Axes, positions: np.ndarray, tops: np.ndarray, capped: np.ndarray) -> int:
    """Write ``†`` just beyond the end of every bar whose run hit the epoch cap; returns how many."""
    hit = np.asarray(capped, dtype=float) > 0
    for p, top in zip(np.asarray(positions)[hit], np.nan_to_num(np.asarray(tops, dtype=float))[hit], strict=True):
        below = top < 0
        ax.annotate(
            CAPPED_MARK,
            (p, top),
            xytext=(0, -3 if below else 1),
            textcoords="offset points",
            ha="center",
            va="top" if below else "bottom",
            fontsize=7,
        )
    return int(hit.sum())


def capped_note(n_marked: int, epoch_cap: float | None = None) -> str:
    """The line explaining the ``†`` marks ('' when no bar is marked)."""
    if not n_marked:
        return ""
    cap = f" ({int(epoch_cap)} epochs)" if epoch_cap is not None and np.isfinite(epoch_cap) else ""
    bars = f"{n_marked} bar" + ("s" if n_marked > 1 else "")
    return f"{CAPPED_MARK} stopped at the epoch cap{cap} in at least one seed, not by early stopping ({bars})"


def display_dataset(name: str) -> str:
    """The study's spelling of a paper dataset (case-insensitive), else the name as configured."""
    return PAPER_DATASETS.get(str(name).lower(), str(name))


def save(fig: plt.Figure, path: str | Path) -> None:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(
            tmp,
            format=path.suffix.lstrip("."),
            bbox_inches="tight",
            metadata={"Software": None} if path.suffix == ".png" else {"Date": None},
        )
    plt.close(fig)


def relative_change(table: pd.DataFrame, metric: str, conditions: Sequence[str], path: str | Path) -> None:
    """Grouped bars: change of ``metric`` vs baseline (%) per model, one bar per knockout condition."""
    col = f"{metric} change %"
    conds = [c for c in conditions if c != "baseline" and c in set(table["condition"])]
    panels = list(table.groupby(["dataset", "feature_set"], sort=True))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(6, 0.9 * table["model"].nunique() + 2), 3.2 * len(panels)), squeeze=False
    )
    n_marked = 0
    for ax, ((dataset, fset), df) in zip(axes[:, 0], panels, strict=True):
        mean = df.groupby(["model", "condition"], sort=False)[col].mean().unstack("condition")
        models = list(dict.fromkeys(df["model"]))
        mean = mean.reindex(index=models, columns=conds)
        width = 0.8 / max(len(conds), 1)
        x = np.arange(len(models))
        stop = df["stop_reason"] if "stop_reason" in df.columns else pd.Series("", index=df.index)
        capped = (
            df.assign(_c=(stop == "epoch_cap").astype(int))
            .groupby(["model", "condition"], sort=False)["_c"]
            .sum()
            .unstack("condition")
            .reindex(index=models, columns=conds)
            .fillna(0)
        )
        for j, cond in enumerate(conds):
            pos = x + (j - (len(conds) - 1) / 2) * width
            ax.bar(pos, mean[cond].to_numpy(dtype=float), width, label=cond)
            n_marked += mark_capped(ax, pos, mean[cond].to_numpy(dtype=float), capped[cond].to_numpy())
        diverged = df[df["status"] != "ok"]
        for _, row in diverged.iterrows():
            if row["condition"] in conds:
                j = conds.index(row["condition"])
                ax.annotate(
                    "div.",
                    (models.index(row["model"]) + (j - (len(conds) - 1) / 2) * width, 0),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, models, rotation=30, ha="right")
        ax.set_ylabel(f"{metric} change vs baseline (%)")
        ax.set_title(f"{dataset} ({fset} features)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(title="condition", ncol=min(len(conds), 4), fontsize=7, loc="best")
    cap = table["epoch_cap"].max() if "epoch_cap" in table.columns else None
    note = capped_note(n_marked, cap)
    if note:
        fig.suptitle(note, fontsize=8)
    fig.tight_layout()
    save(fig, path)


SWEEP_TITLES = {
    "4a": "(a) VBPR vs BPR across reg_weight",
    "4b": "(b) VBPR, constant features",
    "4c": "(c) VBPR, noise features",
}


def vbpr_sweeps(table: pd.DataFrame, metric: str, path: str | Path) -> None:
    """Fig. 4: ``metric`` against reg_weight (log axis), one line per series, mean over seeds."""
    panels = [p for p in SWEEP_TITLES if p in set(table["panel"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        df = table[table["panel"] == panel]
        for series, part in df.groupby("series", sort=False):
            mean = part.groupby("reg_weight")[metric].mean()
            style = {"linestyle": "--", "marker": "x"} if "zero" in series else {"marker": "o"}
            ax.plot(mean.index, mean.to_numpy(), label=series, markersize=4, **style)
        ax.set_xscale("log")
        ax.set_xlabel("reg_weight")
        ax.set_ylabel(metric)
        ax.set_title(SWEEP_TITLES[panel])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


FIG1_CONDITIONS = ["baseline", "text-noise", "image-noise", "dual-noise"]
FIG2_CONDITIONS = ["dual-noise", "dual-ones", "dual-zeros"]
FAMILY_ORDER = ["no features", "simple fusion", "user-item graph", "item-item graph", "hybrid", "user-defined"]
COLOURS = {
    "baseline": "#4d4d4d",
    "text-noise": "#1f77b4",
    "image-noise": "#ff7f0e",
    "dual-noise": "#d62728",
    "dual-ones": "#2ca02c",
    "dual-zeros": "#9467bd",
    "vit": "#8c564b",
    "text": "#1f77b4",
    "image": "#ff7f0e",
}
MARKERS = {"NDCG": "o", "Recall": "s", "Precision": "^"}


def ordered_models(models: Sequence[str]) -> list[str]:
    """Registry order, grouped by family (families in the study's order), unknown models last."""
    present = set(models)
    known = [m for m in MODELS if m in present]
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    known.sort(key=lambda m: (rank.get(FAMILIES.get(m, "user-defined"), len(rank)), MODELS_INDEX[m]))
    return known + sorted(present - set(known))


MODELS_INDEX = {m: i for i, m in enumerate(MODELS)}


def _family_axis(ax, models: Sequence[str]) -> None:
    """Model names as ticks, family separators (dotted lines) and family names under the ticks."""
    x = np.arange(len(models))
    ax.set_xticks(x, models, rotation=35, ha="right")
    ax.set_xlim(-0.6, len(models) - 0.4)
    fams = [FAMILIES.get(m, "user-defined") for m in models]
    start = 0
    for i in range(1, len(models) + 1):
        if i == len(models) or fams[i] != fams[start]:
            if i < len(models):
                ax.axvline(i - 0.5, color="grey", linestyle=":", linewidth=0.8)
            ax.annotate(
                fams[start],
                xy=((start + i - 1) / 2, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7.5,
                color="dimgrey",
                style="italic",
            )
            start = i


def fig1_knockout(
    summary: pd.DataFrame,
    dataset: str,
    feature_set: str,
    path: str | Path,
    conditions: Sequence[str] = FIG1_CONDITIONS,
    metrics: Sequence[str] = ("NDCG@10", "Recall@10"),
) -> None:
    """Fig. 1: per model, grouped bars of each metric under baseline and the noise knockouts."""
    df = summary[(summary["dataset"] == dataset) & (summary["feature_set"] == feature_set)]
    conds = [c for c in conditions if c in set(df["condition"])]
    models = ordered_models(df["model"].unique())
    n_bars = len(models) * max(len(conds), 1)
    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(min(max(6.5, 0.2 * n_bars + 1.5), 16), 3.0 * len(metrics) + 0.6), squeeze=False
    )
    width = 0.8 / max(len(conds), 1)
    x = np.arange(len(models))
    n_marked = 0
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        for j, cond in enumerate(conds):
            part = df[df["condition"] == cond].set_index("model").reindex(models)
            vals = part[metric].to_numpy(dtype=float)
            err = error_bars(part, metric)
            pos = x + (j - (len(conds) - 1) / 2) * width
            if metric == metrics[0]:  # one count per bar position
                n_marked += int((np.nan_to_num(_column(part, "n_capped")) > 0).sum())
            tops = np.nan_to_num(vals) + (0 if err is None else err)
            mark_capped(ax, pos, tops, _column(part, "n_capped"))
            condition_bars(ax, pos, vals, width, err, cond)
            for p, v, ok in zip(pos, vals, part["n_ok"].to_numpy(dtype=float), strict=True):
                if not np.isfinite(v) and ok == 0:
                    ax.annotate(
                        "diverged",
                        (p, 0),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        rotation=90,
                    )
        ax.set_ylabel(f"test {metric}")
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
        _family_axis(ax, models)
    n_seeds = int(df["n_seeds"].max()) if len(df) else 1
    note = f"mean over {n_seeds} seeds, error bars: 95% t-interval over seeds" if n_seeds > 1 else "one seed"
    capped = capped_note(n_marked, _column(df, "epoch_cap").max() if len(df) else None)
    fig.suptitle(
        f"Fig. 1: {display_dataset(dataset)} ({feature_set} features), {note}" + (f"\n{capped}" if capped else ""),
        fontsize=10,
    )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        bottom_legend(fig, handles, labels, "condition")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, path)


def fig2_noise_vs_constant(
    summary: pd.DataFrame,
    feature_sets: Mapping[str, str],
    path: str | Path,
    conditions: Sequence[str] = FIG2_CONDITIONS,
    metric: str = "NDCG@10",
) -> None:
    """Fig. 2: change of ``metric`` vs baseline (%) under dual noise and dual constants, per dataset."""
    col = f"{metric} change %"
    datasets = sorted(feature_sets)
    fig, axes = plt.subplots(len(datasets), 1, figsize=(7.5, 3.0 * len(datasets) + 0.6), squeeze=False)
    n_marked, n_seeds, caps = 0, 1, []
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        df = summary[(summary["dataset"] == dataset) & (summary["feature_set"] == feature_sets[dataset])]
        conds = [c for c in conditions if c in set(df["condition"])]
        models = ordered_models(df["model"].unique())
        x = np.arange(len(models))
        width = 0.8 / max(len(conds), 1)
        for j, cond in enumerate(conds):
            part = df[df["condition"] == cond].set_index("model").reindex(models)
            vals = part[col].to_numpy(dtype=float)
            pos = x + (j - (len(conds) - 1) / 2) * width
            err = error_bars(part, col)
            condition_bars(ax, pos, vals, width, err, cond)
            # a bar's change depends on the knockout run and the baseline run: either may be capped
            base = df[df["condition"] == "baseline"].set_index("model").reindex(models)
            capped = np.nan_to_num(_column(part, "n_capped")) + np.nan_to_num(_column(base, "n_capped"))
            spread = 0 if err is None else err
            tops = np.where(vals < 0, vals - spread, vals + spread)
            n_marked += mark_capped(ax, pos, tops, np.where(np.isfinite(vals), capped, 0))
            for p, v, ok in zip(pos, vals, part["n_ok"].to_numpy(dtype=float), strict=True):
                if not np.isfinite(v):
                    ax.annotate(
                        "diverged" if ok == 0 else "n/a",
                        (p, 0),
                        xytext=(0, -2),
                        textcoords="offset points",
                        ha="center",
                        va="top",
                        fontsize=6,
                        rotation=90,
                    )
        if len(df):
            n_seeds = max(n_seeds, int(df["n_seeds"].max()))
            caps.append(_column(df, "epoch_cap").max())
        ax.axhline(0, color="black", linewidth=0.6)
        ax.margins(y=0.08)  # room for the marks beyond the error bars
        ax.set_ylabel(f"{metric} change vs\nbaseline (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{display_dataset(dataset)} ({feature_sets[dataset]} features)", fontsize=9, pad=14)
        _family_axis(ax, models)
        if not conds:
            ax.text(0.5, 0.5, "no dual-noise / constant runs configured", transform=ax.transAxes, ha="center")
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        bottom_legend(fig, handles, labels, "both modalities replaced by")
    seeds = (
        f"mean over {n_seeds} seeds, error bars: 95% t-interval of the paired difference over seeds"
        if n_seeds > 1
        else "one seed"
    )
    capped = capped_note(n_marked, np.nanmax(caps) if np.isfinite(caps).any() else None)
    fig.suptitle(
        f"Fig. 2: dual knockout with noise vs with constants, {seeds}" + (f"\n{capped}" if capped else ""),
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, path)


def error_bars(part: pd.DataFrame, column: str) -> np.ndarray | None:
    """The ``<column> ci95`` half-widths of a condition's bars, or None when there are none."""
    err = _column(part, f"{column} ci95")
    return np.nan_to_num(err) if np.isfinite(err).any() else None


def condition_bars(ax, pos: np.ndarray, vals: np.ndarray, width: float, err: np.ndarray | None, cond: str) -> None:
    """One condition's bars (missing values drawn as 0) with their error bars, in its colour."""
    ax.bar(
        pos,
        np.nan_to_num(vals),
        width,
        yerr=err,
        capsize=2,
        label=cond,
        color=COLOURS.get(cond),
        error_kw={"linewidth": 0.7},
    )


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN where absent (summaries from older knockout tables lack some)."""
    return df[name].to_numpy(dtype=float) if name in df.columns else np.full(len(df), np.nan)


def fig3_embeddings(
    coords: np.ndarray,
    labels: np.ndarray,
    spectra: Mapping[str, np.ndarray],
    stats: pd.DataFrame,
    title: str,
    path: str | Path,
) -> None:
    """Fig. 3: UMAP map coloured by modality | normalised singular-value spectra | statistics table."""
    fig = plt.figure(figsize=(12.5, 4.4))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.15, 1.0, 0.95])
    ax = fig.add_subplot(grid[0])
    for modality in ("text", "image"):
        pts = coords[labels == modality]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=3,
            alpha=0.55,
            color=COLOURS[modality],
            linewidths=0,
            label=f"{modality} ({len(pts)} items)",
            rasterized=True,
        )
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("UMAP 1"), ax.set_ylabel("UMAP 2")
    ax.set_title("(a) UMAP of L2-normalised features", fontsize=9)
    ax.legend(markerscale=4, fontsize=7, loc="best")
    ax = fig.add_subplot(grid[1])
    for modality, s in spectra.items():
        s = np.asarray(s)
        s = s[s > 0]
        ax.plot(np.arange(1, len(s) + 1), s, color=COLOURS.get(modality), label=modality, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("component (log)")
    ax.set_ylabel("singular value / largest (log)")
    ax.set_title("(b) spectrum of centred normalised features", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[2])
    ax.axis("off")
    fields = [
        ("encoder", "encoder", "{}"),
        ("dimension", "dimension", "{}"),
        ("n_items", "items", "{}"),
        ("n_zero_rows", "zero rows", "{}"),
        ("mean_pairwise_cosine", "mean pairwise cos", "{:.3f}"),
        ("mean_distance_to_centroid", "mean dist. to centroid", "{:.3f}"),
        ("effective_rank", "effective rank", "{:.1f}"),
        ("top10_variance_share", "top-10 var. share", "{:.3f}"),
    ]
    by_mod = stats.set_index("modality")
    cells = [[fmt.format(by_mod.loc[m, key]) for m in by_mod.index] for key, _, fmt in fields]
    table = ax.table(
        cellText=cells,
        rowLabels=[label for _, label, _ in fields],
        colLabels=list(by_mod.index),
        loc="center",
        cellLoc="right",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(0.75, 1.35)
    ax.set_title("(c) per-modality statistics", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    save(fig, path)


def ours_vs_published(comp: pd.DataFrame, path: str | Path, datasets: Sequence[str] = ()) -> None:
    """Scatter of our values against the published ones (linear axes, identity line), coloured by condition."""
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    if comp.empty:
        shown = ", ".join(datasets) if datasets else "these datasets"
        ax.text(
            0.5,
            0.5,
            f"no published numbers for these datasets\n({shown})\n\nthe study reports Baby, Sports and Clothing",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
        )
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel("published value"), ax.set_ylabel("our value")
        ax.set_title("Ours vs published (Appendix Tables 4-10)", fontsize=10)
        save(fig, path)
        return
    ours = comp["ours"].astype(float)
    pub = comp["published"].astype(float)
    positive = (ours > 0) & (pub > 0)
    shown = comp[positive]
    lo = float(min(ours[positive].min(), pub[positive].min())) / 1.3 if positive.any() else 1e-4
    hi = float(max(ours[positive].max(), pub[positive].max())) * 1.3 if positive.any() else 1.0
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="identity")
    for cond, part in shown.groupby("condition", sort=False):
        for family, marker in MARKERS.items():
            sel = part[part["metric"].str.startswith(family)]
            if sel.empty:
                continue
            ax.scatter(
                sel["published"].astype(float),
                sel["ours"].astype(float),
                s=12,
                marker=marker,
                alpha=0.7,
                color=COLOURS.get(cond),
                linewidths=0,
            )
    for cond in dict.fromkeys(comp["condition"]):
        ax.scatter([], [], color=COLOURS.get(cond), s=15, label=cond)
    for family, marker in MARKERS.items():
        if comp["metric"].str.startswith(family).any():
            ax.scatter([], [], color="grey", marker=marker, s=15, label=f"{family}@5/10")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlim(lo, hi), ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("published value (Appendix Tables 4-10, log)")
    ax.set_ylabel("our value (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    zeros = int((~positive).sum())
    ax.set_title(
        f"Ours vs published: {len(comp)} cells" + (f" ({zeros} with a zero value not shown)" if zeros else ""),
        fontsize=9,
    )
    save(fig, path)
