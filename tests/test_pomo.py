"""Pomo et al. (2025): the claims on a synthetic knockout table, the config checks, a fit-once run with
keyword features in Elliot mode, the study config's dry run and the demo slice."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from mmknockout import config as cfg
from mmknockout.analysis import pomo
from mmknockout.errors import InputError
from mmknockout.plan import StudyPlan
from mmknockout.run import train_run
from mmknockout.spec import RunSpec

from workflow_kit import ROOT, snakemake, workflow_copy

STUDY = {
    "models": ["VBPR", "FREEDOM"],
    "metrics": ["Recall@20", "NDCG@20"],
    "late_fusion": "fusion",
    "lvlm": ["lvlm"],
    "noise": {"fusion": "dual-noise", "lvlm": "image-noise"},
    "keywords": ["kw"],
}


def knockout_table(values: dict[tuple[str, str, str], float]) -> pd.DataFrame:
    """Rows of one dataset: (model, feature set, condition) -> both metrics (NDCG = value / 2)."""
    rows = [
        {"dataset": "d", "feature_set": fs, "model": m, "condition": c, "seed": 1, "status": "ok",
         "Recall@20": v, "NDCG@20": v / 2}
        for (m, fs, c), v in values.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


VALUES = {
    ("VBPR", "fusion", "baseline"): 0.30,
    ("VBPR", "fusion", "dual-noise"): 0.20,
    ("VBPR", "lvlm", "baseline"): 0.35,
    ("VBPR", "lvlm", "image-noise"): 0.10,
    ("FREEDOM", "fusion", "baseline"): 0.40,
    ("FREEDOM", "fusion", "dual-noise"): 0.41,  # noise beats real: claim 1 fails here
    ("FREEDOM", "lvlm", "baseline"): 0.45,
    ("FREEDOM", "lvlm", "image-noise"): 0.30,
    ("AttributeItemKNN", "kw", "baseline"): 0.25,
    ("ItemKNN", "kw", "baseline"): 0.26,
}


def test_claims_on_a_synthetic_table():
    long = pomo.results(knockout_table(VALUES), STUDY["metrics"])
    cases = pomo.cases(long, STUDY, {"d": ["fusion", "lvlm", "kw"]})
    noise = cases[cases["claim"] == "noise_below_real"]
    assert len(noise) == 2 * 2 * 2  # metrics x models x real feature sets
    failing = noise[~noise["holds"].astype(bool)]
    assert set(zip(failing["model"], failing["feature_set"], strict=True)) == {("FREEDOM", "fusion")}
    verdict = pomo.verdicts(cases).set_index("claim")
    assert not verdict.loc["noise_below_real", "supported"]
    assert verdict.loc["noise_below_real", "cases"] == 8 and verdict.loc["noise_below_real", "holding"] == 6
    assert bool(verdict.loc["lvlm_at_least_late_fusion", "supported"])
    assert not verdict.loc["keywords_help_knn", "supported"]  # 0.25 < 0.26 on both metrics


def test_keywords_claim_holds_in_several_cases_and_missing_runs_leave_it_untested():
    values = {**VALUES, ("AttributeItemKNN", "kw", "baseline"): 0.26}  # ties count as "at least as good"
    long = pomo.results(knockout_table(values), STUDY["metrics"])
    verdict = pomo.verdicts(pomo.cases(long, STUDY, {"d": ["fusion", "lvlm", "kw"]})).set_index("claim")
    assert bool(verdict.loc["keywords_help_knn", "supported"]) and verdict.loc["keywords_help_knn", "holding"] == 2
    without = {k: v for k, v in VALUES.items() if k[0] != "ItemKNN"}
    cases = pomo.cases(pomo.results(knockout_table(without), STUDY["metrics"]), STUDY, {"d": ["kw"]})
    assert cases["holds"].isna().all()
    assert pd.isna(pomo.verdicts(cases).set_index("claim").loc["keywords_help_knn", "supported"])


def test_feature_sets_of_other_datasets_are_not_compared():
    long = pomo.results(knockout_table(VALUES), STUDY["metrics"])
    cases = pomo.cases(long, STUDY, {"d": ["fusion", "kw"]})
    assert "lvlm" not in set(cases["feature_set"])


def test_claims_step_writes_three_tables(tmp_path):
    knockout = tmp_path / "knockout.csv"
    knockout_table(VALUES).to_csv(knockout, index=False)
    out = {k: str(tmp_path / f"{k}.csv") for k in ("results_table", "cases_table", "claims_table")}
    pomo.claims_step(knockout=str(knockout), study=STUDY, datasets={"d": ["fusion", "lvlm", "kw"]}, **out)
    claims = pd.read_csv(out["claims_table"])
    assert claims["claim"].tolist() == list(pomo.CLAIMS)
    assert len(pd.read_csv(out["results_table"])) == len(VALUES) * 2
    with pytest.raises(InputError, match="no column HitRate@20"):
        pomo.results(knockout_table(VALUES), ["HitRate@20"])


def demo_config():
    return cfg.load_config(ROOT / "config" / "config.yaml")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["studies"]["pomo2025"].update(late_fusion="nope"), "studies.pomo2025.late_fusion"),
        (lambda c: c["studies"]["pomo2025"]["noise"].update(default="nope"), "studies.pomo2025.noise.default"),
        (lambda c: c["studies"]["pomo2025"].update(models=["LightGCN", "GRCN", "Nope"]), "studies.pomo2025.models"),
        (lambda c: c["studies"]["pomo2025"].update(metrics=["Recall@7"]), "studies.pomo2025.metrics"),
        (lambda c: c["encoders"]["text"]["pomo_keywords"].update(source="image/upstream"), "pomo_keywords.source"),
    ],
)
def test_config_checks_name_the_field(change, field):
    conf = demo_config()
    raw = cfg.load_yaml(ROOT / "config" / "config.yaml")
    cfg.apply_slices(raw)
    change(raw)
    with pytest.raises(InputError, match=re.escape(field)):
        cfg.validate_config(raw)
    assert conf["studies"]["pomo2025"]["keywords"] == ["pomo_keywords"]


def test_keywords_refuse_the_misaligned_prompt():
    raw = cfg.load_yaml(ROOT / "config" / "config.yaml")
    cfg.apply_slices(raw)
    raw["encoders"]["image"]["pomo_lvlm"]["input"] = {"prompt": "misaligned"}
    with pytest.raises(InputError, match="misaligned prompt"):
        cfg.validate_config(raw)


def test_study_config_validates_with_elliot_evaluation_and_the_search():
    conf = cfg.load_config(ROOT / "config" / "pomo2025.yaml")
    assert conf["training"]["evaluation"] == "elliot" and conf["training"]["relevance_threshold"] == 4
    assert [conf["datasets"][d]["kcore"] for d in ("baby23", "pets23", "clothing23")] == [5, 5, 10]
    plan = StudyPlan(conf)
    assert len(plan.grid("AttributeItemKNN")) == 30 and len(plan.grid("Random")) == 1
    keys = {(k["feature_set"], k["model"], k["condition"]) for k in plan.selection_keys() if k["dataset"] == "baby23"}
    assert ("kw_baby_knockouts", "AttributeItemKNN", "keywords-shuffle") in keys
    assert ("qwen_baby", "FREEDOM", "image-noise") in keys


def test_the_demo_slice_is_merged_and_small():
    conf = demo_config()
    assert "pomo2025" in conf["slices"]
    plan = StudyPlan(conf)
    keys = [
        k
        for k in plan.selection_keys()
        if k["feature_set"].startswith("pomo_") or k["model"] in ("ItemKNN", "AttributeItemKNN")
    ]
    assert sum(len(plan.grid(k["model"])) for k in keys) <= 18, keys  # the slice's training jobs
    assert "results/tables/pomo2025/claims.csv" in plan.targets()


def write_inter(path, rows):
    pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp", "x_label"]).to_csv(
        path, sep="\t", index=False
    )


def test_attribute_item_knn_run_in_elliot_mode_writes_the_record(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 12
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, 6, replace=False)
        for j, i in enumerate(items):
            rows.append((u, int(i), int(rng.integers(1, 6)), j, 0 if j < 4 else (1 if j == 4 else 2)))
    write_inter(tmp_path / "d.inter", rows)
    onehot = np.zeros((n_items, 4), dtype=np.float32)
    onehot[np.arange(n_items), np.arange(n_items) % 4] = 1
    np.save(tmp_path / "kw.npy", onehot)
    spec = RunSpec(
        dataset="d",
        feature_set="kw",
        text_encoder="kw",
        image_encoder=None,
        model="AttributeItemKNN",
        params_id="x",
        params={"neighbors": 5, "similarity": "cosine", "feat_w": "bm25", "weight": 2.0},
        condition="keywords-shuffle",
        condition_spec={"text": "shuffle"},
        seed=1,
        training={"topk": [5, 10], "valid_metric": "Recall@10", "evaluation": "elliot", "relevance_threshold": 4},
    )
    out = {k: tmp_path / f"{k}.out" for k in ("metrics", "history", "per_user")}
    record = train_run(spec, inter=tmp_path / "d.inter", features={"text": tmp_path / "kw.npy"},
                       user_graph=None, item_graph=None, **out)  # fmt: skip
    saved = json.loads(out["metrics"].read_text())
    assert saved["training"]["evaluation"] == "elliot" and saved["stop_reason"] == "closed_form"
    assert saved["status"] == "ok" and np.isfinite(saved["test"]["NDCG@10"])
    assert record["epochs_run"] == 0
    per_user = np.load(out["per_user"])
    test_ratings = {(u, i): r for u, i, r, _, x in rows if x == 2}
    relevant_users = {u for (u, _), r in test_ratings.items() if r >= 4}
    assert set(per_user["users"].tolist()) == relevant_users  # users without a relevant test item dropped


def test_dry_run_of_the_study_config(tmp_path):
    work = workflow_copy(tmp_path)
    stats = snakemake(work, "-n", "--configfile", "config/pomo2025.yaml").stdout
    assert re.search(r"^pomo_claims\s+1$", stats, re.M)
    assert re.search(r"^keyword_features\s+3$", stats, re.M)
    assert re.search(r"^vl_image_features\s+3$", stats, re.M)


def test_keyword_sets_a_dataset_does_not_run_are_skipped():
    study = copy.deepcopy(STUDY)
    study["keywords"] = ["kw", "other"]
    long = pomo.results(knockout_table(VALUES), STUDY["metrics"])
    cases = pomo.cases(long, study, {"d": ["kw"]})
    assert set(cases["feature_set"]) == {"kw"}
