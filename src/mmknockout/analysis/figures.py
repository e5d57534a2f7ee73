"""Figures, drawn with matplotlib's Agg backend and saved byte-stably (no dates in metadata)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "mmknockout", "figure.dpi": 110, "font.size": 9})


def save(fig: plt.Figure, path: str | Path) -> None:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight",
                    metadata={"Software": None} if path.suffix == ".png" else {"Date": None})
    plt.close(fig)


def relative_change(table: pd.DataFrame, metric: str, conditions: Sequence[str], path: str | Path) -> None:
    """Grouped bars: change of ``metric`` vs baseline (%) per model, one bar per knockout condition."""
    col = f"{metric} change %"
    conds = [c for c in conditions if c != "baseline" and c in set(table["condition"])]
    panels = list(table.groupby(["dataset", "feature_set"], sort=True))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 0.9 * table["model"].nunique() + 2), 3.2 * len(panels)),
                             squeeze=False)
    for ax, ((dataset, fset), df) in zip(axes[:, 0], panels):
        mean = df.groupby(["model", "condition"], sort=False)[col].mean().unstack("condition")
        models = list(dict.fromkeys(df["model"]))
        mean = mean.reindex(index=models, columns=conds)
        width = 0.8 / max(len(conds), 1)
        x = np.arange(len(models))
        for j, cond in enumerate(conds):
            ax.bar(x + (j - (len(conds) - 1) / 2) * width, mean[cond].to_numpy(dtype=float), width, label=cond)
        diverged = df[df["status"] != "ok"]
        for _, row in diverged.iterrows():
            if row["condition"] in conds:
                j = conds.index(row["condition"])
                ax.annotate("div.", (models.index(row["model"]) + (j - (len(conds) - 1) / 2) * width, 0),
                            ha="center", va="bottom", fontsize=6, rotation=90)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, models, rotation=30, ha="right")
        ax.set_ylabel(f"{metric} change vs baseline (%)")
        ax.set_title(f"{dataset} ({fset} features)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(title="condition", ncol=min(len(conds), 4), fontsize=7, loc="best")
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
    for ax, panel in zip(axes[0], panels):
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
