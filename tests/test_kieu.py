"""Kieu et al. (2025), VIRAL: the published Tables 1 and 2, Table 1/2 ours vs published, the modality
contributions and claims on a synthetic knockout table, the config checks, the study config's dry
run, the plan's targets and the report captions.

The study config and the demo slice name the model VIRAL and the encoder kind vlm_caption; tests that
load them are skipped while either is missing from this checkout."""

from __future__ import annotations

import copy
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmknockout import config as cfg
from mmknockout import paths
from mmknockout.analysis import kieu
from mmknockout.errors import InputError
from mmknockout.models.registry import MODELS
from mmknockout.plan import StudyPlan
from mmknockout.workflow import STEPS

from workflow_kit import ROOT, snakemake, workflow_copy

STUDY = ROOT / "config" / "kieu2025.yaml"
MERGED = "VIRAL" in MODELS and "vlm_caption" in (ROOT / "config" / "schema.yaml").read_text()
needs_viral = pytest.mark.skipif(not MERGED, reason="model VIRAL or encoder kind vlm_caption not in this checkout")
T1 = ["Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]


def base_demo() -> dict:
    """The demo config without slices (validates without VIRAL)."""
    conf = copy.deepcopy(cfg.load_yaml(ROOT / "config" / "config.yaml"))
    conf["slices"] = []
    return conf


def with_study(**study) -> dict:
    conf = base_demo()
    conf["studies"] = {
        "kieu2025": {
            "models": ["FREEDOM", "LATTICE"],
            "viral": "default",
            "table1": ["default"],
            "contribution": {"reference": "default", "vlm": "default", "models": ["FREEDOM"]},
            **study,
        }
    }
    return conf


# ---------------------------------------------------------------- published tables

TABLE1 = {  # RELATED 4.2 / the paper's Table 1, as printed
    "models": "BPR LightGCN VBPR MMGCN GRCN SLMRec LATTICE FREEDOM DRAGON MENTOR COHESION VIRAL",
    "Baby R@10": ".0357 .0479 .0423 .0421 .0532 .0521 .0547 .0627 .0513 .0678 .0680 .0705",
    "Baby R@20": ".0575 .0754 .0663 .0660 .0824 .0772 .0850 .0992 .0803 .1048 .1052 .1083",
    "Baby N@10": ".0192 .0257 .0223 .0220 .0282 .0289 .0292 .0330 .0278 .0362 .0354 .0378",
    "Baby N@20": ".0249 .0328 .0284 .0282 .0358 .0354 .0370 .0424 .0352 .0450 .0454 .0474",
    "Sports R@10": ".0432 .0569 .0558 .0401 .0599 .0663 .0620 .0717 .0588 .0763 .0752 .0788",
    "Sports R@20": ".0653 .0864 .0856 .0636 .0919 .0990 .0953 .1089 .0899 .1139 .1137 .1168",
    "Sports N@10": ".0241 .0311 .0307 .0209 .0330 .0365 .0335 .0385 .0324 .0409 .0409 .0430",
    "Sports N@20": ".0298 .0387 .0384 .0270 .0413 .0450 .0421 .0481 .0404 .0511 .0503 .0528",
    "Clothing R@10": ".0206 .0361 .0281 .0227 .0421 .0442 .0492 .0629 .0452 .0668 .0665 .0681",
    "Clothing R@20": ".0303 .0544 .0415 .0361 .0657 .0659 .0733 .0941 .0675 .0989 .0983 .1013",
    "Clothing N@10": ".0114 .0197 .0158 .0120 .0224 .0241 .0268 .0341 .0242 .0360 .0358 .0374",
    "Clothing N@20": ".0138 .0243 .0192 .0154 .0284 .0296 .0330 .0420 .0298 .0441 .0438 .0462",
}
TABLE2 = {  # (module, approach): Baby R@10/R@20/N@20, Sports R@10/R@20/N@20
    ("image feature", "Original"): ".0668/.1026/.0450 .0751/.1126/.0510",
    ("image feature", "VLM w/o title"): ".0692/.1077/.0469 .0770/.1159/.0515",
    ("fusion", "Pooling"): ".0668/.1031/.0452 .0758/.1130/.0506",
    ("fusion", "Concat"): ".0677/.1035/.0454 .0778/.1142/.0511",
    ("fusion", "Weighted Concat"): ".0668/.1068/.0461 .0770/.1160/.0520",
    ("full model", "VIRAL"): ".0705/.1083/.0474 .0788/.1168/.0528",
}
LONG = {"R@10": "Recall@10", "R@20": "Recall@20", "N@10": "NDCG@10", "N@20": "NDCG@20"}


def published1() -> pd.DataFrame:
    return kieu.read_reference(ROOT / paths.KIEU_TABLE1_REFERENCE, kieu.TABLE1_COLUMNS)


def published2() -> pd.DataFrame:
    return kieu.read_reference(ROOT / paths.KIEU_TABLE2_REFERENCE, kieu.TABLE2_COLUMNS)


def test_reference_table1_matches_the_paper():
    ref = published1()
    assert len(ref) == 3 * 4 * 12
    cells = {(d, m, k): v for d, m, k, v in ref.itertuples(index=False)}
    models = TABLE1["models"].split()
    for row, line in TABLE1.items():
        if row == "models":
            continue
        dataset, metric = row.split()
        for model, value in zip(models, line.split(), strict=True):
            assert cells[(dataset, model, LONG[metric])] == float(value), (row, model)


def test_reference_table2_matches_the_paper():
    ref = published2()
    assert len(ref) == 6 * 2 * 3
    cells = {(d, mo, a, k): v for d, mo, a, k, v in ref.itertuples(index=False)}
    for (module, approach), line in TABLE2.items():
        for dataset, cell in zip(["Baby", "Sports"], line.split(), strict=True):
            for metric, value in zip(kieu.TABLE2_METRICS, cell.split("/"), strict=True):
                assert cells[(dataset, module, approach, metric)] == float(value), (module, approach, dataset)
    assert [tuple(r) for r in ref[["module", "approach"]].drop_duplicates().values] == kieu.ABLATION_ROWS


def test_reference_refuses_other_columns(tmp_path):
    (tmp_path / "bad.csv").write_text("dataset,model,value\nBaby,BPR,0.1\n")
    with pytest.raises(InputError, match="columns must be"):
        kieu.read_reference(tmp_path / "bad.csv", kieu.TABLE1_COLUMNS)


# ---------------------------------------------------------------- synthetic knockout table


def row(fs, model, cond, seed=1, status="ok", scale=1.0, dataset="baby", **values):
    return {
        "dataset": dataset,
        "feature_set": fs,
        "model": model,
        "condition": cond,
        "seed": seed,
        "status": status,
        **{m: values.get(m, 0.05) * scale for m in T1},
    }


def synthetic_knockout(path) -> None:
    """Published Baby values as our baselines (VIRAL on vlm_desc, the others on default/baselines, two
    seeds around them), VIRAL's Original row, knockouts with known changes and a diverged run."""
    ref = published1()
    baby = ref[ref["dataset"] == "Baby"]
    rows = []
    for model, group in baby.groupby("model"):
        values = dict(zip(group["metric"], group["value"], strict=True))
        fs = {"VIRAL": "vlm_desc", "FREEDOM": "default"}.get(model, "baselines")
        for seed, shift in ((1, -0.0002), (2, 0.0002)):
            rows.append(row(fs, model, "baseline", seed=seed, **{m: values[m] + shift for m in T1}))
    # VIRAL on upstream images (Table 2 Original: published .0668/.1026/.0450), FREEDOM with descriptions
    rows.append(row("default", "VIRAL", "baseline", **{"Recall@10": 0.0668, "Recall@20": 0.1026, "NDCG@20": 0.045}))
    # knockouts, FREEDOM: default text-noise -50 %, image-noise -2 %; vlm_desc baseline 0.1, text -20 %, image -10 %
    free = dict(zip(baby[baby["model"] == "FREEDOM"]["metric"], baby[baby["model"] == "FREEDOM"]["value"], strict=True))
    rows.append(row("default", "FREEDOM", "text-noise", **{m: free[m] * 0.5 for m in T1}))
    rows.append(row("default", "FREEDOM", "image-noise", **{m: free[m] * 0.98 for m in T1}))
    rows.append(row("vlm_desc", "FREEDOM", "baseline", **{m: 0.1 for m in T1}))
    rows.append(row("vlm_desc", "FREEDOM", "text-noise", **{m: 0.08 for m in T1}))
    rows.append(row("vlm_desc", "FREEDOM", "image-noise", **{m: 0.09 for m in T1}))
    rows.append(row("vlm_desc", "FREEDOM", "dual-noise", status="diverged", **dict.fromkeys(T1, np.nan)))
    pd.DataFrame(rows).to_csv(path, index=False)


def test_table1_in_the_papers_layout(tmp_path):
    synthetic_knockout(tmp_path / "knockout.csv")
    models = ["BPR", "LightGCN", "VBPR", "MMGCN", "GRCN", "SLMRec", "LATTICE", "FREEDOM", "DRAGON", "VIRAL"]
    kieu.table1_step(
        knockout=str(tmp_path / "knockout.csv"),
        reference=str(ROOT / paths.KIEU_TABLE1_REFERENCE),
        table=str(tmp_path / "t1.csv"),
        models=models,
        metrics=T1,
        feature_sets=["default", "baselines"],
        viral="vlm_desc",
    )
    t = pd.read_csv(tmp_path / "t1.csv", dtype=str, keep_default_na=False)
    assert list(t.columns) == ["dataset", "metric", "row", *models, "MENTOR", "COHESION"]
    assert set(t["dataset"]) == {"Baby"}  # only Baby was run
    assert t[["metric", "row"]].values.tolist()[:3] == [["R@10", "ours"], ["R@10", "published"], ["R@10", "diff %"]]
    cell = t.set_index(["metric", "row"])
    # the seed mean is the published value; VIRAL comes from vlm_desc, not its default (Original) run
    assert cell.loc[("R@20", "ours"), "VIRAL"] == "0.1083" == cell.loc[("R@20", "published"), "VIRAL"]
    assert cell.loc[("R@20", "ours"), "FREEDOM"] == "0.0992"
    assert (cell.xs("diff %", level="row")[models] == "+0.0").all().all()
    assert cell.loc[("N@10", "ours"), "MENTOR"] == "" and cell.loc[("N@10", "published"), "MENTOR"] == "0.0362"


def test_table2_with_fusion_runs(tmp_path):
    synthetic_knockout(tmp_path / "knockout.csv")
    records = []
    for i, (fusion, pid, valid, r20) in enumerate(
        [
            ("pooling", "fusion~pooling+reg_lambda~0.1", 0.2, 0.1031),
            ("pooling", "fusion~pooling+reg_lambda~1.0", 0.1, 0.5),  # worse on validation: not selected
            ("concat", "fusion~concat+reg_lambda~0.1", 0.2, 0.1035),
        ]
    ):
        test = {"Recall@10": 0.07, "Recall@20": r20, "NDCG@20": 0.045}
        rec = {
            "dataset": "baby",
            "params_id": pid,
            "params": {"fusion": fusion},
            "seed": 999,
            "status": "ok",
            "valid": {"Recall@20": valid},
            "test": test,
        }
        (tmp_path / f"r{i}.json").write_text(json.dumps(rec))
        records.append(str(tmp_path / f"r{i}.json"))
    kieu.table2_step(
        knockout=str(tmp_path / "knockout.csv"),
        reference=str(ROOT / paths.KIEU_TABLE2_REFERENCE),
        table=str(tmp_path / "t2.csv"),
        records=records,
        viral="vlm_desc",
        original="default",
        notitle=None,
        metric="Recall@20",
        selection="valid",
    )
    t = pd.read_csv(tmp_path / "t2.csv", dtype=str, keep_default_na=False)
    assert [tuple(r) for r in t[["module", "approach"]].values] == [
        ("image feature", "Original"),
        ("fusion", "Pooling"),
        ("fusion", "Concat"),
        ("full model", "VIRAL"),
    ]
    cell = t.set_index("approach")
    assert cell.loc["Pooling", "R@20 ours"] == "0.1031" and cell.loc["Pooling", "R@20 diff %"] == "+0.0"
    assert cell.loc["Original", "R@20 ours"] == "0.1026" and cell.loc["Original", "N@20 published"] == "0.0450"
    assert cell.loc["VIRAL", "R@10 ours"] == "0.0705"


def test_contribution_and_claims(tmp_path):
    synthetic_knockout(tmp_path / "knockout.csv")
    out = {k: tmp_path / k for k in ("contribution.csv", "claims.csv", "figure.png")}
    kieu.contribution_step(
        knockout=str(tmp_path / "knockout.csv"),
        table=str(out["contribution.csv"]),
        claims_table=str(out["claims.csv"]),
        figure_file=str(out["figure.png"]),
        reference="default",
        vlm="vlm_desc",
        models=["VIRAL", "FREEDOM"],
        conditions=["text-noise", "image-noise", "dual-noise"],
        metrics=["NDCG@10", "Recall@20"],
    )
    c = pd.read_csv(out["contribution.csv"], dtype=str, keep_default_na=False)
    free = c[(c["model"] == "FREEDOM") & (c["metric"] == "NDCG@10")].set_index(["feature_set", "condition"])
    assert free.loc[("default", "text-noise"), "change %"] == "-50.0"
    assert free.loc[("default", "image-noise"), "change %"] == "-2.0"
    assert free.loc[("vlm_desc", "text-noise"), "change %"] == "-20.0"
    assert free.loc[("vlm_desc", "image-noise"), "change %"] == "-10.0"
    assert free.loc[("vlm_desc", "dual-noise"), "change %"] == ""  # diverged: no value
    claims = pd.read_csv(out["claims.csv"], dtype=str, keep_default_na=False)
    f = claims[(claims["model"] == "FREEDOM") & (claims["metric"] == "NDCG@10")].set_index("claim")
    assert f["supported"].to_dict() == {
        "VLM descriptions improve accuracy": "supported",  # 0.1 vs .0330
        "visual contribution grows": "supported",  # -10 % vs -2 %
        "less reliance on text": "supported",  # -20 % vs -50 %
        "the gain survives text-noise": "supported",  # 0.08 vs .0165
    }
    assert (
        f.loc["visual contribution grows", "vlm"] == "-10.0"
        and f.loc["the gain survives text-noise", "vlm"] == "0.0800"
    )
    v = claims[(claims["model"] == "VIRAL") & (claims["metric"] == "Recall@20")].set_index("claim")
    assert v.loc["VLM descriptions improve accuracy", "supported"] == "supported"  # .1083 vs .1026
    assert v.loc["visual contribution grows", "supported"] == "not run"
    assert out["figure.png"].stat().st_size > 0


def test_claims_on_made_up_values():
    def contrib(ref_text, vlm_text, ref_img, vlm_img):
        rows = []
        for fs, b, t, i in (("r", 0.1, ref_text, ref_img), ("v", 0.1, vlm_text, vlm_img)):
            for cond, change in (("text-noise", t), ("image-noise", i)):
                rows.append(["D", fs, "M", cond, "NDCG@10", b, b * (1 + change / 100), change])
        return pd.DataFrame(rows, columns=["dataset", "feature_set", "model", "condition", "metric", *"xyz"]).rename(
            columns={"x": "baseline", "y": "value", "z": "change %"}
        )

    got = kieu.claims(contrib(-10, -30, -5, -1), "r", "v").set_index("claim")["supported"].to_dict()
    assert got == {
        "VLM descriptions improve accuracy": "not supported",  # equal baselines
        "visual contribution grows": "not supported",
        "less reliance on text": "not supported",
        "the gain survives text-noise": "not supported",
    }


# ---------------------------------------------------------------- config checks


def test_the_study_section_validates_and_fills_defaults():
    conf = cfg.validate_config(with_study())
    study = conf["studies"]["kieu2025"]
    assert study["metrics"] == T1 and study["fusion"] == []
    assert study["contribution"]["conditions"] == ["text-noise", "image-noise", "dual-noise"]
    assert study["contribution"]["metrics"] == ["NDCG@10", "Recall@20"]
    plan = StudyPlan(conf)
    assert plan.kieu_fusion_records() == []
    assert plan.kieu_targets() == [
        paths.KIEU_TABLE1,
        paths.KIEU_TABLE2,
        paths.KIEU_CONTRIBUTION,
        paths.KIEU_CLAIMS,
        paths.KIEU_FIGURE,
    ]
    assert set(plan.kieu_targets()) <= set(plan.targets())
    assert not [t for t in StudyPlan(cfg.validate_config(base_demo())).targets() if "kieu2025" in t]


@pytest.mark.parametrize(
    ("study", "field"),
    [
        ({"viral": "absent"}, "studies.kieu2025.viral"),
        ({"table1": ["default", "absent"]}, "studies.kieu2025.table1.1"),
        ({"models": ["VIRAL"]}, "studies.kieu2025.models"),
        ({"metrics": ["Recall@100"]}, "studies.kieu2025.metrics"),
        ({"fusion": ["pooling"]}, "studies.kieu2025.fusion"),
        ({"fusion": ["mean"]}, "studies.kieu2025.fusion.0"),
        (
            {"contribution": {"reference": "default", "vlm": "absent", "models": ["FREEDOM"]}},
            "studies.kieu2025.contribution.vlm",
        ),
        (
            {"contribution": {"reference": "default", "vlm": "default", "models": ["FREEDOM"], "conditions": ["blur"]}},
            "studies.kieu2025.contribution.conditions",
        ),
        ({"fusion_datasets": ["baby"]}, "studies.kieu2025.fusion_datasets"),
    ],
)
def test_bad_study_sections_are_refused(study, field):
    with pytest.raises(InputError, match=re.escape(f"config field '{field}'")):
        cfg.validate_config(with_study(**study))


def test_steps_of_the_new_rules():
    assert STEPS["kieu_table1"] == "mmknockout.analysis.kieu:table1_step"
    assert STEPS["kieu_table2"] == "mmknockout.analysis.kieu:table2_step"
    assert STEPS["kieu_contribution"] == "mmknockout.analysis.kieu:contribution_step"
    from mmknockout.features.tiny_step import TINY

    assert TINY["qwen2.5-vl"] == ("mmknockout.features.tiny_qwen:tiny_qwen2_5_vl", None)


# ---------------------------------------------------------------- study config, slice, workflow


@needs_viral
def test_plan_of_the_study():
    conf = cfg.load_config(STUDY)
    assert conf["training"]["epochs"] == 1000 and conf["training"]["patience"] == 20
    plan = StudyPlan(conf)
    assert set(plan.kieu_targets()) <= set(plan.targets())
    keys = plan.selection_keys()
    knockout = {(k["feature_set"], k["model"]) for k in keys if k["condition"] != "baseline"}
    assert knockout == {(fs, m) for fs in ("default", "vlm_desc") for m in ("VIRAL", "FREEDOM")}
    assert len([k for k in keys if k["condition"] != "baseline"]) == 3 * 2 * 2 * 5
    base = {k["model"] for k in keys if k["condition"] == "baseline"}
    assert base == set(conf["studies"]["kieu2025"]["models"])
    fusion = plan.kieu_fusion_records()
    n_grid = len(plan.grid("VIRAL"))
    assert len(fusion) == 2 * 3 * n_grid * len(conf["seeds"])
    assert all("/vlm_desc/VIRAL/baseline/" in f and "fusion~" in f for f in fusion)
    assert {f.split("/")[2] for f in fusion} == {"baby", "sports"}
    # config/models/VIRAL.yaml must know `fusion` (under fixed or grid) for these params ids to parse
    fusions = {cfg.parse_params_id("VIRAL", f.split("/")[6])["fusion"] for f in fusion}
    assert fusions == {"pooling", "concat", "weighted_concat"}
    assert not set(fusion) & set(plan.selected_per_user())  # extra runs, not grid points of a selection


@needs_viral
def test_dry_run_of_the_study_config(tmp_path):
    work = workflow_copy(tmp_path)
    stats = snakemake(work, "-n", "--configfile", "config/kieu2025.yaml").stdout
    for rule in ("kieu_table1", "kieu_table2", "kieu_contribution"):
        assert re.search(rf"^{rule}\s+1$", stats, re.M), rule
    assert re.search(r"^select_params\s+99$", stats, re.M)  # 3 datasets x (12 + 8 + 12 + 1)


@needs_viral
def test_the_demo_slice_is_merged():
    conf = cfg.load_config(ROOT / "config" / "config.yaml")
    assert "kieu2025" in conf["slices"] and conf["studies"]["kieu2025"]["viral"] == "vlm_desc"
    plan = StudyPlan(conf)
    viral = [k for k in plan.selection_keys() if k["model"] == "VIRAL" or k["feature_set"] == "vlm_desc"]
    runs = sum(len(plan.grid(k["model"])) for k in viral)
    assert runs <= 12, runs  # the slice's training jobs
    assert {(k["feature_set"], k["condition"]) for k in viral if k["model"] == "FREEDOM"} == {
        ("vlm_desc", c) for c in ("baseline", "text-noise", "image-noise")
    }
    assert conf["encoders"]["image"]["vlm_desc"]["model"] == paths.fill(paths.TINY_MODEL, name="qwen2.5-vl")


CAPTIONS = {
    "table1": {"models": ["FREEDOM", "VIRAL"], "metrics": T1, "feature_sets": ["default"], "viral": "vlm_desc"},
    "table2": {
        "viral": "vlm_desc",
        "original": "default",
        "notitle": None,
        "metric": "Recall@20",
        "selection": "valid",
    },
    "contribution": {
        "reference": "default",
        "vlm": "vlm_desc",
        "models": ["VIRAL", "FREEDOM"],
        "conditions": ["text-noise", "image-noise"],
        "metrics": ["NDCG@10", "Recall@20"],
    },
}
CAPTIONS["claims"] = CAPTIONS["figure"] = CAPTIONS["contribution"]


@pytest.mark.parametrize("name", sorted(CAPTIONS))
def test_captions_render(name):
    jinja2 = pytest.importorskip("jinja2")
    from docutils.core import publish_parts

    conf = cfg.validate_config(base_demo())
    snake = SimpleNamespace(config=conf, params=SimpleNamespace(**CAPTIONS[name]), wildcards=SimpleNamespace())
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    source = (ROOT / "workflow" / "report" / f"kieu2025_{name}.rst").read_text()
    rst = env.from_string(source).render(snakemake=snake)
    html = publish_parts(rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 5})["body"]
    assert "system-message" not in html and "mailto:" not in html
