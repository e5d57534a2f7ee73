"""Table builders on a hand-made knockout frame."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmknockout.analysis import stats, tables

REFERENCE = Path(__file__).resolve().parents[1] / "resources" / "reference"
METRICS = tables.APPENDIX_METRICS

# NDCG@10 per (model, condition); the other metrics are fixed multiples
NDCG10 = {
    "BPR": {"baseline": 0.0200, "text-noise": 0.0200, "image-noise": 0.0200, "dual-noise": 0.0200},
    "VBPR": {"baseline": 0.0211, "text-noise": 0.0205, "image-noise": 0.0150, "dual-noise": 0.0224},
    "BM3": {"baseline": 0.0275, "text-noise": 0.0270, "image-noise": 0.0272, "dual-noise": 0.0283},
    "FREEDOM": {
        "baseline": 0.0329,
        "text-noise": 0.0250,
        "image-noise": 0.0320,
        "dual-noise": 0.0232,
        "dual-zeros": None,
    },
}
SCALE = {"NDCG@5": 0.77, "NDCG@10": 1.0, "Recall@5": 1.2, "Recall@10": 1.9, "Precision@5": 0.26, "Precision@10": 0.21}


def make_knockout(datasets=("baby", "demo"), seeds=(999,), feature_sets=("default",), jitter=0.0):
    rows = []
    rng = np.random.default_rng(0)
    for d in datasets:
        for fs in feature_sets:
            for model, conds in NDCG10.items():
                for cond, v in conds.items():
                    if fs != "default" and cond != "baseline":
                        continue
                    for seed in seeds:
                        row = {
                            "dataset": d,
                            "feature_set": fs,
                            "model": model,
                            "condition": cond,
                            "seed": seed,
                            "family": "x",
                            "status": "ok" if v is not None else "diverged",
                            "params": "p",
                            "best_epoch": 3,
                            "diverged_epoch": None,
                        }
                        for m, s in SCALE.items():
                            val = None if v is None else v * s * (1.1 if fs == "vit" else 1.0)
                            if val is not None and jitter:
                                val *= 1 + jitter * rng.standard_normal()
                            row[m] = round(val, 4) if val is not None else math.nan
                        rows.append(row)
    return pd.DataFrame(rows)


def make_significance(ko):
    """Significance rows built from a knockout frame (p-values made up)."""
    rows = []
    summ = tables.seed_summary(ko, METRICS)
    base = summ[summ["condition"] == "baseline"].set_index(["dataset", "feature_set", "model"])
    for _, r in summ[summ["condition"] != "baseline"].iterrows():
        for m in tables.STUDY_METRICS:
            b = base.loc[(r["dataset"], r["feature_set"], r["model"])]
            rows.append(
                {
                    "dataset": r["dataset"],
                    "feature_set": r["feature_set"],
                    "model": r["model"],
                    "condition": r["condition"],
                    "metric": m,
                    "n_seeds": r["n_seeds"],
                    "mean_baseline": b[m],
                    "ci95_baseline": b[f"{m} ci95"],
                    "mean_knockout": r[m],
                    "ci95_knockout": r[f"{m} ci95"],
                    "change %": r[f"{m} change %"],
                    "ci95": math.nan,
                    "p_seeds": math.nan,
                    "p_users": 0.0004,
                    "p_users_by_seed": "999:<0.001",
                    "n_users": 100,
                }
            )
    return pd.DataFrame(rows, columns=stats.SIG_COLUMNS)


def test_seed_summary_means_and_intervals():
    ko = make_knockout(seeds=(1, 2, 3), jitter=0.05)
    s = tables.seed_summary(ko)
    row = s[(s["dataset"] == "baby") & (s["model"] == "VBPR") & (s["condition"] == "image-noise")].iloc[0]
    vals = ko[(ko["dataset"] == "baby") & (ko["model"] == "VBPR") & (ko["condition"] == "image-noise")]["NDCG@10"]
    assert row["n_seeds"] == 3 and row["NDCG@10"] == pytest.approx(vals.mean())
    assert row["NDCG@10 ci95"] == pytest.approx(stats.ci95(vals))
    zero = s[(s["model"] == "FREEDOM") & (s["condition"] == "dual-zeros")].iloc[0]
    assert zero["n_ok"] == 0 and math.isnan(zero["NDCG@10"])
    assert s[s["condition"] == "baseline"]["NDCG@10 change %"].eq(0).all()


def test_table2_lists_models_that_lose_on_image_noise():
    ko = make_knockout()
    sig = make_significance(ko)
    t2 = tables.vision_sensitive(sig, {"baby": "default", "demo": "default"}, threshold=5.0)
    assert list(t2["model"].unique()) == ["VBPR"]  # -28.9 %; FREEDOM -2.7 %, BM3 -1.1 %
    assert list(t2["dataset"]) == ["Baby", "demo"]
    assert t2.loc[0, "NDCG@10 baseline"] == "0.0211" and t2.loc[0, "NDCG@10 knockout"] == "0.0150"
    assert t2.loc[0, "NDCG@10 change %"] == "-28.9"
    assert t2.loc[0, "NDCG@10 change"] == "-28.9% (p<0.001)"
    assert "condition" not in t2.columns
    assert tables.vision_sensitive(sig, threshold=1.0)["model"].unique().tolist() == ["VBPR", "BM3", "FREEDOM"]


def test_table3_models_and_conditions_in_order():
    ko = make_knockout(datasets=("baby",))
    t3 = tables.bm3_slmrec_vbpr(make_significance(ko), {"baby": "default"})
    assert list(t3["model"].unique()) == ["BM3", "VBPR"]  # SLMRec not run
    assert list(t3["condition"][:3]) == ["text-noise", "image-noise", "dual-noise"]
    assert t3.loc[2, "NDCG@10 change"] == "+2.9% (p<0.001)"


def test_table2_with_several_seeds_has_interval_columns():
    ko = make_knockout(seeds=(1, 2, 3), jitter=0.02)
    t2 = tables.vision_sensitive(make_significance(ko))
    assert "NDCG@10 baseline ci95" in t2.columns and "NDCG@10 p (seeds)" in t2.columns
    assert "users p<0.001" in t2.loc[0, "NDCG@10 change"]


def test_empty_table2_keeps_its_header():
    ko = make_knockout()
    sig = make_significance(ko[ko["condition"] != "image-noise"])
    t2 = tables.vision_sensitive(sig)
    assert t2.empty and "NDCG@10 change" in t2.columns
    tex = tables.comparison_latex(t2, "Table 2", "tab:x", note="nothing")
    assert "nothing" in tex and r"\begin{tabular}" in tex


@pytest.mark.parametrize("table,condition", [(4, "baseline"), (5, "dual-noise"), (6, "text-noise"), (7, "image-noise")])
def test_appendix_layout_matches_the_reference(table, condition):
    ko = make_knockout(datasets=("baby", "sports"))
    summary = tables.seed_summary(ko)
    ours = tables.appendix_table(summary, {"baby": "default", "sports": "default"}, condition)
    ref = tables.read_reference_table(REFERENCE / f"table{table}_{condition}.csv")
    assert list(ours.columns) == list(ref.columns)
    assert "BPR" not in set(ours["model"])
    assert list(ours["model"]) == sorted(ours["model"])
    assert set(ours["dataset"]) == {"Baby", "Sports"}
    if table > 4:
        vbpr = ours[(ours["model"] == "VBPR") & (ours["dataset"] == "Baby")].iloc[0]
        expected = {"dual-noise": "+6.2", "text-noise": "-2.8", "image-noise": "-28.9"}[condition]
        assert vbpr["NDCG@10 change %"] == expected
        assert all(len(v.split(".")[1]) == 1 and v[0] in "+-" for v in ours["NDCG@5 change %"])


def test_appendix_csv_roundtrip_and_latex(tmp_path):
    summary = tables.seed_summary(make_knockout(datasets=("baby",)))
    df = tables.appendix_table(summary, {"baby": "default"}, "dual-noise")
    path = tmp_path / "t.csv"
    tables.write_csv(df, path)
    back = tables.read_reference_table(path)
    pd.testing.assert_frame_equal(back, df.astype(str))
    first = path.read_bytes()
    tables.write_csv(tables.appendix_table(summary, {"baby": "default"}, "dual-noise"), path)
    assert path.read_bytes() == first
    tex = tables.appendix_latex(df, "Appendix Table 5", "tab:5")
    assert r"0.0224 (+6.2\%)" in tex
    zeros = tables.appendix_table(summary, {"baby": "default"}, "dual-zeros")
    assert zeros.loc[0, "NDCG@10"] == "" and "diverged" in tables.appendix_latex(zeros, "t", "l")


def test_appendix_table10_compares_feature_sets():
    ko = make_knockout(datasets=("baby",), feature_sets=("default", "vit"))
    index = tables.read_reference_index(REFERENCE / "tables.csv")
    cond, shown, ref, title = tables.appendix_spec(10, index, {"baby": ["default", "vit"]})
    assert (cond, shown, ref) == ("baseline", {"baby": "vit"}, {"baby": "default"})
    df = tables.appendix_table(tables.seed_summary(ko), shown, cond, ref)
    assert list(df.columns) == list(tables.read_reference_table(REFERENCE / "table10_vit.csv").columns)
    assert df.loc[df["model"] == "BM3", "NDCG@10 change %"].item() == "+10.2"  # 0.0303 vs 0.0275


def test_appendix_with_several_seeds_appends_intervals():
    summary = tables.seed_summary(make_knockout(datasets=("baby",), seeds=(1, 2), jitter=0.05))
    df = tables.appendix_table(summary, {"baby": "default"}, "dual-noise")
    ref = tables.read_reference_table(REFERENCE / "table5_dual-noise.csv")
    assert list(df.columns[: len(ref.columns)]) == list(ref.columns)
    assert list(df.columns[len(ref.columns) :]) == [f"{m} ci95" for m in METRICS] + [
        f"{m} change % includes 0" for m in METRICS
    ]


def test_ours_vs_published():
    summary = tables.seed_summary(make_knockout(datasets=("baby", "demo")))
    ours = {4: tables.appendix_table(summary, {"baby": "default", "demo": "default"}, "baseline")}
    pub = {4: tables.read_reference_table(REFERENCE / "table4_baseline.csv")}
    comp = tables.ours_vs_published(ours, pub, {4: "baseline"})
    assert list(comp.columns) == tables.COMPARISON_COLUMNS
    assert set(comp["dataset"]) == {"Baby"} and set(comp["model"]) == {"BM3", "FREEDOM", "VBPR"}
    assert len(comp) == 3 * 6
    row = comp[(comp["model"] == "VBPR") & (comp["metric"] == "NDCG@10")].iloc[0]
    assert (row["ours"], row["published"], row["abs diff"], row["rel diff %"]) == (
        "0.0211",
        "0.0211",
        "+0.0000",
        "+0.0",
    )
    demo_only = {4: tables.appendix_table(summary, {"demo": "default"}, "baseline")}
    empty = tables.ours_vs_published(demo_only, pub, {4: "baseline"})
    assert empty.empty and list(empty.columns) == tables.COMPARISON_COLUMNS


def test_encoder_swap_one_and_two_feature_sets():
    ko = make_knockout(datasets=("baby",), feature_sets=("default", "vit"))
    summary = tables.seed_summary(ko, tables.STUDY_METRICS)
    one = tables.encoder_swap_table(summary, {"baby": ["default"]})
    assert list(one.columns) == ["dataset", "model", "family"] + [f"{m} default" for m in tables.STUDY_METRICS]
    assert list(one["model"]) == ["BPR", "VBPR", "BM3", "FREEDOM"]
    two = tables.encoder_swap_table(summary, {"baby": ["default", "vit"]})
    assert two.loc[two["model"] == "BM3", "NDCG@10 vit change %"].item() == "+10.2"


def test_latex_escapes():
    assert tables.latex_escape("a_b 5% & x±y") == r"a\_b 5\% \& x$\pm$y"
    assert tables.fmt_change(-0.04) == "+0.0" and tables.fmt_change(2.35) in ("+2.4", "+2.3")


def test_study_tables_without_the_condition_are_empty_not_broken():
    sig = pd.DataFrame(
        {
            "dataset": ["demo"],
            "feature_set": ["default"],
            "model": ["VBPR"],
            "condition": ["dual-noise"],
            "metric": ["NDCG@10"],
            "n_seeds": [1],
            "mean_baseline": [0.2],
            "mean_knockout": [0.1],
            "change %": [-50.0],
            "ci95_baseline": [np.nan],
            "ci95_knockout": [np.nan],
            "p_seeds": [np.nan],
            "p_users": [0.01],
        }
    )
    table2 = tables.vision_sensitive(sig, {"demo": "default"})
    assert table2.empty and "model" in table2.columns
