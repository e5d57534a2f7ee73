"""Report wiring: which outputs a config asks for, and every caption renders to clean HTML."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mmknockout import config as cfg
from mmknockout.plan import StudyPlan

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules" / "report.smk"
INDEX = ROOT / "resources" / "reference" / "tables.csv"


def _config(name):
    return cfg.load_config(ROOT / "config" / name)


def test_plan_for_the_paper_config():
    plan = StudyPlan(_config("paper.yaml"), INDEX)
    assert plan.appendix == {
        4: "baseline",
        5: "dual-noise",
        6: "text-noise",
        7: "image-noise",
        8: "dual-ones",
        9: "dual-zeros",
        10: "vit",
        11: "llava",
    }
    assert plan.feature_sets["baby"] == ["default", "vit", "resnet", "llava"]
    targets = plan.targets()
    assert (
        "results/tables/appendix/table10_vit.csv" in targets and "results/figures/fig1_knockout_sports.png" in targets
    )
    assert "results/figures/fig3_embeddings_clothing_resnet.png" in targets
    assert "results/tables/appendix/table11_llava.csv" in targets  # the LLaVA-caption features
    assert len(targets) == len(set(targets))


def test_plan_for_a_small_config():
    conf = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    conf["conditions"] = {"baseline": {}, "dual-noise": {"text": "noise", "image": "noise"}}
    conf["slices"] = []  # the slices run conditions left out here (text-noise, image-noise)
    plan = StudyPlan(cfg.validate_config(conf), INDEX)
    assert plan.appendix == {4: "baseline", 5: "dual-noise"}
    conf["models"] = ["BPR"]
    assert StudyPlan(conf, INDEX).embeddings == []


def test_plan_declares_the_per_user_files_of_every_grid_point():
    plan = StudyPlan(_config("config.yaml"), INDEX)
    per_user = plan.selected_per_user()
    assert len(per_user) == len(set(per_user))
    assert len(per_user) == sum(len(plan.grid(k["model"])) for k in plan.selection_keys())
    assert all(p.endswith("/per_user.npz") for p in per_user)


class _Params(SimpleNamespace):
    def __getattr__(self, name):  # any other param renders as a placeholder
        return "x"


@pytest.mark.parametrize("seeds", [[999], [1, 2, 3]])
def test_captions_render_without_warnings(seeds):
    jinja2 = pytest.importorskip("jinja2")
    from docutils.core import publish_parts

    conf = _config("paper.yaml")
    conf["seeds"] = seeds
    text = RULES.read_text()
    captions = sorted(set(re.findall(r'caption="\.\./report/([\w.]+\.rst)"', text)))
    assert len(captions) >= 10
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    for name in captions:
        source = (ROOT / "workflow" / "report" / name).read_text()
        snakemake = SimpleNamespace(
            config=conf,
            wildcards=SimpleNamespace(dataset="baby", feature_set="vit", table="10", name="vit"),
            params=_Params(
                feature_set="default",
                threshold=5.0,
                metrics=["NDCG@10", "Recall@10"],
                sample=2000,
                seed=0,
                encoders={"text": "a", "image": "b"},
            ),
        )
        rst = env.from_string(source).render(snakemake=snakemake)
        html = publish_parts(
            rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": False}
        )["body"]
        assert "mailto:" not in html, name
        assert "system-message" not in html, name
        assert not re.search(r"[a-z][.)][A-Z]", rst.replace("e.g.", "")), (name, rst)  # lost space after a block tag
