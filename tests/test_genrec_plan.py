"""Zhu et al. (2025) wiring: the config checks, the study plan, the published tables, the analysis on
hand-made runs, the study config's dry run and the demo slice."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from mmknockout import config as cfg
from mmknockout import paths
from mmknockout.analysis import zhu
from mmknockout.errors import InputError
from mmknockout.plan import StudyPlan
from mmknockout.workflow import STEPS

from workflow_kit import ROOT, snakemake, workflow_copy

STUDY = ROOT / "config" / "zhu2025.yaml"


def with_study(**study) -> dict:
    conf = copy.deepcopy(cfg.load_yaml(ROOT / "config" / "config.yaml"))
    conf["slices"] = []
    conf["studies"] = {"zhu2025": {"feature_set": "default", **study}}
    return conf


def test_the_study_section_validates_and_fills_defaults():
    conf = cfg.validate_config(with_study())
    study = conf["studies"]["zhu2025"]
    assert study["rqvae"]["codebook_size"] == 256 and study["rqvae"]["beta"] == 0.25
    assert study["seq2seq"]["d_model"] == 128 and study["seq2seq"]["beams"] == 20
    assert study["variants"] == ["TIGER-text", "TIGER-image", "MGR-EF", "MGR-LF", "MGR-LF++"]
    plan = StudyPlan(conf).zhu
    assert plan.sid_kinds == ["text", "image", "fused"] and plan.datasets == ["demo"]
    assert len(plan.run_files()) == 5 * len(conf["conditions"]) * len(conf["seeds"])
    assert set(plan.codes_of("demo", "MGR-LF++", "baseline", 999)) == {"text_codes", "image_codes"}
    assert plan.codes_of("demo", "MGR-EF", "dual-ones", 999)["fused_codes"] == (
        "results/sids/demo/default/fused/dual-ones/seed999/codes.npy"
    )
    assert set(plan.targets()) <= set(StudyPlan(conf).targets())
    assert not StudyPlan(cfg.validate_config(with_study() | {"studies": {}})).zhu


@pytest.mark.parametrize(
    "study,field",
    [
        ({"conditions": ["nope"]}, "studies.zhu2025.conditions"),
        ({"valid_metric": "NDCG@50"}, "studies.zhu2025.valid_metric"),
        ({"seq2seq": {"beams": 5}}, "studies.zhu2025.seq2seq.beams"),
        ({"seq2seq": {"mode": "pretrained"}}, "studies.zhu2025.seq2seq.model"),
        ({"feature_set": "missing"}, "studies.zhu2025.feature_set"),
        ({"datasets": ["baby"]}, "studies.zhu2025.datasets"),
        ({"ranking_models": ["NOPE"]}, "studies.zhu2025.ranking_models"),
        ({"variants": ["TIGER"]}, "studies.zhu2025.variants.0"),
    ],
)
def test_bad_study_sections_are_refused(study, field):
    with pytest.raises(InputError, match=re.escape(f"config field '{field}'")):
        cfg.validate_config(with_study(**study))


def test_absent_conditions_cannot_be_quantised():
    conf = with_study()
    conf["models"] = ["FREEDOM"]  # a model that runs without a modality
    conf["conditions"]["text-absent"] = {"text": "absent"}
    with pytest.raises(InputError, match="'text-absent' drops a modality"):
        cfg.validate_config(conf)


def test_conditions_that_leave_a_kind_untouched_reuse_the_baseline():
    plan = StudyPlan(cfg.validate_config(with_study())).zhu
    assert plan.source_condition(["text"], "image-noise") == "baseline"
    assert plan.source_condition(["fused"], "image-noise") == "image-noise"
    assert plan.source_condition(["text", "image"], "text-noise") == "text-noise"
    files = plan.run_files()
    assert len(files) == len(plan.run_keys()) and len(set(files)) == len(files) - 2  # TIGER-text, TIGER-image
    assert "results/genrec/demo/default/TIGER-text/baseline/learning_rate~0.001/seed999/metrics.json" in [
        f for f, k in zip(files, plan.run_keys(), strict=True) if k["condition"] == "image-noise"
    ]
    codes = plan.codes_of("demo", "MGR-LF++", "image-noise", 999)
    assert "/text/baseline/" in codes["text_codes"] and "/image/image-noise/" in codes["image_codes"]


def test_steps_of_the_new_rules():
    assert STEPS["seq_split"] == "mmknockout.data.sequential:seq_split_step"
    assert STEPS["semantic_ids"] == "mmknockout.genrec.sids:semantic_ids_step"
    assert STEPS["train_genrec"] == "mmknockout.genrec.run:train_genrec_step"
    assert STEPS["zhu_sids"] == "mmknockout.analysis.zhu:sids_step"
    assert STEPS["zhu_tables"] == "mmknockout.analysis.zhu:tables_step"


def test_published_tables_match_the_paper():
    t5 = pd.read_csv(paths.ZHU_REFERENCE.replace("resources", str(ROOT / "resources"), 1))
    assert len(t5) == 9 * 3 * 3
    cell = t5[(t5.dataset == "Toys") & (t5.method == "MGR-LF++")].set_index("metric")["value"]
    assert cell.to_dict() == {"MRR": 0.0280, "NDCG": 0.0349, "Hits@5": 0.0562}
    sports = t5[(t5.dataset == "Sports") & (t5.metric == "MRR")].set_index("method")["value"]
    assert sports.idxmax() == "TIGER(CLIP-text)"  # the paper's Sports MRR: MGR-LF++ is not best
    diag = pd.read_csv(paths.ZHU_DIAGNOSTICS_REFERENCE.replace("resources", str(ROOT / "resources"), 1))
    assert diag[(diag.table == 1) & (diag.dataset == "Sports")]["value"].tolist() == [0.3976, 0.5105, 0.6351]
    assert diag[(diag.table == 3) & (diag.dataset == "Beauty")]["value"].tolist() == [0.0505, 0.0417, 0.0336]


# ---------------------------------------------------------------- analysis on hand-made runs


def record(variant, condition, lr, valid, ndcg, seed=1, dataset="toys"):
    test = {f"{m}@{k}": ndcg for m in ("MRR", "NDCG", "HitRate") for k in (5, 10, 20)}
    return {
        "dataset": dataset,
        "model": variant,
        "condition": condition,
        "params_id": f"learning_rate~{lr}",
        "seed": seed,
        "status": "ok",
        "valid": {"NDCG@20": valid},
        "test": test,
        "hits_by_part": {"text@5": 0.3, "image@5": 0.2, "whole@5": 0.1},
    }


def test_selection_table5_comparison_and_orderings():
    runs = [
        record("TIGER-text", "baseline", 0.01, 0.2, 0.020),
        record("TIGER-text", "baseline", 0.001, 0.3, 0.030),
        record("MGR-LF++", "baseline", 0.001, 0.2, 0.050),
        record("MGR-EF", "baseline", 0.001, 0.2, 0.040),
        record("MGR-LF++", "dual-ones", 0.001, 0.2, 0.025),
    ]
    chosen = zhu.selected_runs(runs, "NDCG@20")
    assert [r["params_id"] for r in chosen if r["model"] == "TIGER-text"] == ["learning_rate~0.001"]
    t5 = zhu.table5(zhu.runs_frame(chosen), zhu.metric_names((5, 10, 20)), ["TIGER-text", "MGR-EF", "MGR-LF++"])
    assert t5[t5.condition == "baseline"]["variant"].tolist() == ["TIGER-text", "MGR-EF", "MGR-LF++"]
    published = pd.DataFrame(
        [
            ("Toys", m, "NDCG", v)
            for m, v in [("TIGER(CLIP-text)", 0.0275), ("MGR-EF", 0.0294), ("MGR-LF++", 0.0349), ("SASRec", 0.0056)]
        ],
        columns=["dataset", "method", "metric", "value"],
    )
    comp = zhu.comparison(t5, published, cutoff=20)
    ours = comp.set_index("method")["ours"]
    assert ours["MGR-LF++"] == 0.05 and ours["TIGER(CLIP-text)"] == 0.03 and np.isnan(ours["SASRec"])
    assert comp.set_index("method").loc["MGR-EF", "ours_metric"] == "NDCG@20"
    order = zhu.orderings(comp).iloc[0]
    assert order["published order"] == order["our order"] == "MGR-LF++ > MGR-EF > TIGER(CLIP-text)"
    assert order["kendall tau"] == pytest.approx(1.0) and order["same best"]
    knock = pd.DataFrame(
        [
            ("toys", "default", "FREEDOM", "dual-ones", 1, "ok", -10.0),
            ("toys", "other", "FREEDOM", "dual-ones", 1, "ok", 99.0),
        ],
        columns=["dataset", "feature_set", "model", "condition", "seed", "status", "NDCG@20 change %"],
    )
    change = zhu.knockout_change(t5, knock, "default", ["FREEDOM"], 20).set_index(["model", "condition"])
    assert change.loc[("MGR-LF++", "dual-ones"), "NDCG@20 change %"] == pytest.approx(-50.0)
    assert change.loc[("MGR-LF++", "baseline"), "MRR@20 change %"] == pytest.approx(0.0)
    assert change.loc[("FREEDOM", "dual-ones"), "NDCG@20 change %"] == -10.0


def test_overlap_parts_and_published_diagnostics():
    chosen = [
        {**record(v, "baseline", 0.001, 0.1, 0.1), "_file": v}
        for v in ("TIGER-text", "TIGER-image", "MGR-EF", "MGR-LF")
    ]
    top1 = {
        "TIGER-text": np.array([1, 2, 3, 4]),
        "TIGER-image": np.array([1, 2, 0, 0]),
        "MGR-EF": np.array([1, 2, 3, 0]),
        "MGR-LF": np.zeros(4),
    }
    overlap = zhu.overlap_table(chosen, top1).set_index(["a", "b"])["overlap"]
    assert overlap[("TIGER-text", "TIGER-image")] == 0.5 and overlap[("TIGER-text", "MGR-EF")] == 0.75
    parts = zhu.parts_table(zhu.runs_frame(chosen))
    ami = pd.DataFrame(
        [("toys", "baseline", 1, "text", "image", 0.4)], columns=["dataset", "condition", "seed", "a", "b", "ami"]
    )
    published = pd.DataFrame(
        [
            (1, "Toys", "AMI", "Img vs. Txt", 0.2765),
            (2, "Toys", "overlap", "Txt vs. Multimodal", 0.4612),
            (3, "Toys", "Hits@5", "Image Only", 0.0495),
            (1, "Toys", "AMI", "Txt vs. Multimodal", 0.4829),
        ],
        columns=["table", "dataset", "quantity", "column", "value"],
    )
    diag = zhu.diagnostics_vs_published(published, ami, zhu.overlap_table(chosen, top1), parts)
    assert diag["ours"].tolist()[:3] == [0.4, 0.75, 0.2] and np.isnan(diag["ours"].iloc[3])


def test_ami_table_pairs_and_collapse():
    keys = [
        {"dataset": "d", "sid_kind": k, "condition": c, "seed": 1}
        for c in ("baseline", "dual-ones")
        for k in ("text", "image")
    ]
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 4, (50, 2)), rng.integers(0, 4, (50, 2)), np.zeros((50, 2), int), np.zeros((50, 2), int)]
    stats = [{"ami_category": 0.1}, {"ami_category": None}, {"ami_category": 0.0}, {"ami_category": 0.0}]
    ami = zhu.ami_table(codes, keys, stats)
    pair = ami[(ami.a == "text") & (ami.b == "image")].set_index("condition")["ami"]
    assert abs(pair["baseline"]) < 0.2 and np.isnan(pair["dual-ones"])
    assert len(ami[ami.b == "category"]) == 3


# ---------------------------------------------------------------- study config, slice, workflow


def test_plan_of_the_study():
    conf = cfg.load_config(STUDY)
    plan = StudyPlan(conf).zhu
    assert plan.datasets == ["toys", "beauty", "sports"] and len(plan.params) == 3
    assert len(plan.sid_keys()) == 3 * 3 * 6 and len(plan.run_keys()) == 3 * 6 * 6 * 3
    sasrec = {f for f, k in zip(plan.run_files(), plan.run_keys(), strict=True) if k["variant"] == "SASRec"}
    assert len(sasrec) == 3 * 3 and all("/SASRec/baseline/" in f for f in sasrec)  # no features, no knockout
    assert [plan.seq2seq(d)["steps"] for d in plan.datasets] == [10000, 15000, 20000]
    assert conf["studies"]["zhu2025"]["fusion"] == "mean"
    spec = plan.run_spec("toys", "MGR-LF++", "image-noise", "learning_rate~0.01", 999)
    assert spec["params"] == {"learning_rate": 0.01} and spec["seq2seq"]["align_steps"] == 5000


def test_dry_run_of_the_study_config(tmp_path):
    work = workflow_copy(tmp_path)
    stats = snakemake(work, "-n", "--configfile", "config/zhu2025.yaml").stdout
    # per dataset: 16 RQ-VAEs (image-noise leaves the text IDs alone, text-noise the image IDs) and 28 x 3
    # learning rates runs (TIGER-text under image-noise is its baseline run, TIGER-image under text-noise),
    # and SASRec's baseline per learning rate
    assert re.search(r"^semantic_ids\s+48$", stats, re.M) and re.search(r"^train_genrec\s+261$", stats, re.M)
    assert re.search(r"^seq_split\s+3$", stats, re.M) and re.search(r"^zhu_tables\s+1$", stats, re.M)


def test_the_demo_slice_is_merged():
    conf = cfg.load_config(ROOT / "config" / "config.yaml")
    plan = StudyPlan(conf).zhu
    assert "zhu2025" in conf["slices"] and plan.variants == ["TIGER-text", "MGR-LF++"]
    assert len(set(plan.run_files())) <= 3 and len(set(plan.sid_files())) <= 3  # the slice's jobs
    s = conf["studies"]["zhu2025"]["seq2seq"]
    assert s["steps"] + s["align_steps"] <= 300  # a few hundred steps
