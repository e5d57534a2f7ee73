"""Seed noise and stop reasons: intervals of the paired difference, marks in tables and figures."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_tables import make_knockout, make_significance

from mmknockout.analysis import aggregate, plots, stats, tables


def _t_interval(values):
    """Brute force: mean and half-width of the 95 % Student-t interval."""
    x = np.asarray(values, dtype=float)
    return x.mean(), sps.t.ppf(0.975, len(x) - 1) * np.sqrt(((x - x.mean()) ** 2).sum() / (len(x) - 1) / len(x))


def _paired(ko, model, cond, metric="NDCG@10", dataset="baby"):
    part = ko[(ko["dataset"] == dataset) & (ko["model"] == model)].set_index(["condition", "seed"])[metric]
    seeds = sorted(ko["seed"].unique())
    return np.array([part[("baseline", s)] for s in seeds]), np.array([part[(cond, s)] for s in seeds])


def test_change_interval_is_the_t_interval_of_paired_differences():
    ko = make_knockout(datasets=("baby",), seeds=(1, 2, 3, 4, 5), jitter=0.08)
    s = tables.seed_summary(ko, ["NDCG@10"])
    seen = set()
    for model, cond in (
        ("VBPR", "image-noise"),
        ("FREEDOM", "text-noise"),
        ("BM3", "dual-noise"),
        ("BPR", "text-noise"),
    ):
        row = s[(s["model"] == model) & (s["condition"] == cond)].iloc[0]
        b, k = _paired(ko, model, cond)
        centre, half = _t_interval(k - b)
        assert row["NDCG@10 change % ci95"] == pytest.approx(half / b.mean() * 100)
        assert row["NDCG@10 change % includes 0"] is bool(abs(centre) <= half)
        # the same decision as the paired t-test over seeds at 5 %
        assert row["NDCG@10 change % includes 0"] is bool(sps.ttest_rel(k, b).pvalue >= 0.05)
        seen.add(row["NDCG@10 change % includes 0"])
    assert seen == {True, False}
    base = s[(s["model"] == "VBPR") & (s["condition"] == "baseline")].iloc[0]
    assert math.isnan(base["NDCG@10 change % ci95"]) and base["NDCG@10 change % includes 0"] is None


def test_paired_change_interval_edge_cases():
    assert stats.paired_change_interval([1.0, 1.0], [1.1, 1.1]) == (0.0, False)  # no spread: a sure change
    assert stats.paired_change_interval([1.0, 1.0], [1.0, 1.0]) == (0.0, True)
    half, zero = stats.paired_change_interval([3.0], [2.0])
    assert math.isnan(half) and zero is None
    half, zero = stats.paired_change_interval([1.0, math.nan, 2.0], [1.5, 1.0, math.nan])
    assert math.isnan(half) and zero is None


def _record(cond, seed, value, stop="early_stopping"):
    return {
        "dataset": "baby",
        "feature_set": "default",
        "model": "VBPR",
        "condition": cond,
        "seed": seed,
        "status": "ok",
        "params_id": "p",
        "best_epoch": 4,
        "stop_reason": stop,
        "stop_epoch": 9,
        "training": {"epochs": 10},
        "test": {"NDCG@10": value},
    }


def test_significance_reports_interval_and_caps(tmp_path):
    base = [0.0300, 0.0310, 0.0290]
    noisy = [0.0305, 0.0295, 0.0300]  # differences +5, -15, +10 (1e-4): the interval includes 0
    dropped = [0.0200, 0.0205, 0.0190]
    records = [_record("baseline", s, v, "epoch_cap" if s == 1 else "early_stopping") for s, v in enumerate(base)]
    records += [_record("text-noise", s, v) for s, v in enumerate(noisy)]
    records += [_record("image-noise", s, v, "epoch_cap") for s, v in enumerate(dropped)]
    sig = stats.significance(records, ["NDCG@10"], per_user={}).set_index("condition")
    assert sig["interval_includes_zero"].to_dict() == {"text-noise": True, "image-noise": False}
    assert sig.loc["text-noise", "n_capped_baseline"] == 1 and sig.loc["text-noise", "n_capped_knockout"] == 0
    assert sig.loc["image-noise", "n_capped_knockout"] == 3
    path = tmp_path / "sig.csv"
    stats.write_significance(sig.reset_index()[stats.SIG_COLUMNS], path)
    back = stats.read_significance(path).set_index("condition")
    assert back["interval_includes_zero"].to_dict() == {"text-noise": True, "image-noise": False}
    assert back.loc["image-noise", "n_capped_knockout"] == 3
    # Table 3 shows the marks: ° on the change within noise, † on the capped runs
    t3 = tables.knockout_comparison(back.reset_index(), ["VBPR"], ["text-noise", "image-noise"], ["NDCG@10"])
    rows = t3.set_index("condition")
    assert rows.loc["text-noise", "NDCG@10 change"].split(" ")[0].endswith("%°")
    assert "°" not in rows.loc["image-noise", "NDCG@10 change"]
    assert rows.loc["text-noise", "NDCG@10 interval includes 0"] == "yes"
    assert rows.loc["image-noise", "capped knockout"] == "3/3" and rows.loc["text-noise", "capped baseline"] == "1/3"
    tex = tables.comparison_latex(t3, "T", "tab:t", ["NDCG@10"])
    assert r"\textsuperscript{\dag}" in tex and r"$^{\circ}$" in tex
    assert "epoch cap" in tex and "includes 0" in tex


def test_knockout_table_carries_stop_reasons():
    records = [_record("baseline", 1, 0.03, "epoch_cap"), _record("text-noise", 1, 0.02)]
    ko = aggregate.knockout_table(records, ["baseline", "text-noise"], ["NDCG@10"])
    assert ko["stop_reason"].tolist() == ["epoch_cap", "early_stopping"]
    assert ko["stop_epoch"].tolist() == [9, 9] and ko["epoch_cap"].tolist() == [10, 10]
    summary = tables.seed_summary(ko, ["NDCG@10"]).set_index("condition")
    assert summary.loc["baseline", "n_capped"] == 1 and summary.loc["text-noise", "n_capped"] == 0


def _capped_knockout(seeds=(1,)):
    ko = make_knockout(datasets=("baby",), seeds=seeds, jitter=0.05 if len(seeds) > 1 else 0.0)
    ko["stop_reason"] = np.where(
        (ko["model"] == "BPR") & (ko["condition"] == "baseline"), "epoch_cap", "early_stopping"
    )
    ko["epoch_cap"] = 15
    key = ["dataset", "feature_set", "model", "seed"]
    base = ko[ko["condition"] == "baseline"].set_index(key)["NDCG@10"]
    ko["NDCG@10 change %"] = (
        (ko["NDCG@10"] / base.reindex(pd.MultiIndex.from_frame(ko[key])).to_numpy() - 1) * 100
    ).round(1)
    return ko


def test_appendix_marks_capped_runs_and_noise():
    summary = tables.seed_summary(_capped_knockout(seeds=(1, 2, 3)))
    ko = _capped_knockout(seeds=(1, 2, 3))
    ko.loc[(ko["model"] == "VBPR") & (ko["condition"] == "text-noise"), "stop_reason"] = "epoch_cap"
    summary = tables.seed_summary(ko)
    df = tables.appendix_table(summary, {"baby": "default"}, "text-noise")
    row = df.set_index("model").loc["VBPR"]
    assert row["capped"] == "3/3" and df.set_index("model").loc["BM3", "capped"] == ""
    assert set(df["NDCG@10 change % includes 0"]) <= {"yes", "no"}
    tex = tables.appendix_latex(df, "T", "tab:a")
    assert r"VBPR\textsuperscript{\dag}" in tex and "epoch cap" in tex
    if (df["NDCG@10 change % includes 0"] == "yes").any():
        assert r"$^{\circ}$" in tex


def _texts(fig):
    out = [t.get_text() for ax in fig.axes for t in ax.texts]
    return out + [fig._suptitle.get_text() if fig._suptitle else ""]


@pytest.fixture
def drawn(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    return figures


def test_figures_mark_capped_runs_and_draw_seed_intervals(drawn):
    ko = _capped_knockout(seeds=(1, 2, 3))
    plots.fig1_knockout(tables.seed_summary(ko, ["NDCG@10", "Recall@10"]), "baby", "default", "f1.png")
    plots.fig2_noise_vs_constant(tables.seed_summary(ko, ["NDCG@10"]), {"baby": "default"}, "f2.png")
    plots.relative_change(ko, "NDCG@10", ["baseline", "text-noise", "dual-noise"], "ko.png")
    fig1, fig2, fig_ko = drawn
    assert _texts(fig1).count("†") == 2  # BPR's baseline bar, in both panels
    assert "stopped at the epoch cap (15 epochs)" in _texts(fig1)[-1] and "95% t-interval" in _texts(fig1)[-1]
    # Fig. 2: BPR's changes rest on a capped baseline: its dual-noise and dual-zeros... bars are marked
    assert _texts(fig2).count("†") >= 1 and "paired difference" in _texts(fig2)[-1]
    errorbars = [c for c in fig2.axes[0].containers if getattr(c, "errorbar", None) is not None]
    assert errorbars and any(len(c.errorbar.lines[2]) for c in errorbars)
    assert _texts(fig_ko).count("†") == 0  # BPR's baseline is not a bar of the change figure
    ko.loc[(ko["model"] == "VBPR") & (ko["condition"] == "dual-noise"), "stop_reason"] = "epoch_cap"
    plots.relative_change(ko, "NDCG@10", ["baseline", "text-noise", "dual-noise"], "ko.png")
    assert _texts(drawn[-1]).count("†") == 1


def test_figures_without_caps_or_seeds(drawn):
    ko = make_knockout(datasets=("baby",))
    plots.fig1_knockout(tables.seed_summary(ko, ["NDCG@10", "Recall@10"]), "baby", "default", "f1.png")
    plots.fig2_noise_vs_constant(tables.seed_summary(ko, ["NDCG@10"]), {"baby": "default"}, "f2.png")
    assert all("†" not in t for fig in drawn for t in _texts(fig))
    assert "one seed" in _texts(drawn[1])[-1]


def test_old_knockout_tables_without_stop_columns():
    ko = make_knockout(datasets=("baby",), seeds=(1, 2), jitter=0.05)
    assert "stop_reason" not in ko.columns
    summary = tables.seed_summary(ko, ["NDCG@10"])
    assert (summary["n_capped"] == 0).all()
    sig = make_significance(ko)
    assert len(tables.bm3_slmrec_vbpr(sig, {"baby": "default"}))
    pd.testing.assert_frame_equal(summary, tables.seed_summary(ko, ["NDCG@10"]))


def test_paper_seeds_config_is_the_paper_study_with_five_seeds():
    from pathlib import Path

    from mmknockout import config as cfg

    root = Path(__file__).resolve().parents[1] / "config"
    paper, seeds = cfg.load_yaml(root / "paper.yaml"), cfg.load_yaml(root / "paper-seeds.yaml")
    assert len(seeds["seeds"]) == 5 and seeds["seeds"][0] == paper["seeds"][0] == 999
    assert {k: v for k, v in seeds.items() if k != "seeds"} == {k: v for k, v in paper.items() if k != "seeds"}
    cfg.validate_config(seeds)
