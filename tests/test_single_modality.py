"""One-slot feature sets and the structural ``absent`` condition: the reduced models equal hand-written
one-modality computations; configs, runs and the workflow's inputs follow the filled slots."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from test_model_lattice import dense_learned, knn_weighted, sym

from mmknockout import config as cfg
from mmknockout.errors import InputError
from mmknockout.knockout import Condition, Replacement
from mmknockout.models import graph
from mmknockout.models.bm3 import BM3
from mmknockout.models.dragon import DRAGON
from mmknockout.models.freedom import FREEDOM
from mmknockout.models.lattice import LATTICE
from mmknockout.models.vbpr import VBPR

import model_kit

USERS, POS, NEG = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 5, 9, 5]), torch.tensor([3, 4, 7, 8])


def bpr(u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()


# --- equations of the reduced models --------------------------------------------------------------


def test_vbpr_image_only_has_a_content_layer_on_the_image_features():
    feats = model_kit.single_slot("image")
    model = model_kit.build(VBPR, model_kit.params("VBPR"), features=feats)
    x = torch.tensor(feats["image"])
    assert model.item_linear.in_features == x.shape[1]
    _, items = model.representations()
    content = x @ model.item_linear.weight.T + model.item_linear.bias
    torch.testing.assert_close(items, torch.cat([model.item_embedding, content], 1))


def test_freedom_text_only_graph_is_the_text_knn_graph_and_loss_has_the_text_term_only():
    data, feats = model_kit.tiny_split(), model_kit.single_slot("text")
    p = model_kit.params("FREEDOM", reg_weight=0.5)
    model = model_kit.build(FREEDOM, p, data, feats)
    text_graph = graph.knn_graph(torch.tensor(feats["text"]), p["knn_k"], weighted=False).to_dense()
    torch.testing.assert_close(model.mm_adj.to_dense(), text_graph)
    assert list(model.content.tables) == ["text"]
    users, items = model.propagate(model.adj)
    proj = model.content("text")
    u = users[USERS]
    expected = bpr(u, items[POS], items[NEG]) + 0.5 * bpr(u, proj[POS], proj[NEG])
    torch.testing.assert_close(model.loss(USERS, POS, NEG), expected)


def test_lattice_image_only_graphs_are_the_image_graphs_with_weight_one():
    data, feats = model_kit.tiny_split(), model_kit.single_slot("image")
    p = model_kit.params("LATTICE")
    model = model_kit.build(LATTICE, p, data, feats)
    assert not hasattr(model, "modal_weight") and list(model.original_adj) == ["image"]
    k, lam = p["knn_k"], p["lambda_coeff"]
    with torch.no_grad():
        original = sym(knn_weighted(feats["image"].astype(np.float64), k))
        np.testing.assert_allclose(model.original_adj["image"].to_dense().numpy(), original, atol=1e-6)
        learned = sym(knn_weighted(model.content("image").double().numpy(), k))
        np.testing.assert_allclose(dense_learned(model), learned, atol=1e-5)
        s = (1 - lam) * learned + lam * original
        h = np.linalg.matrix_power(s, p["n_layers"]) @ model.item_embedding.double().numpy()
        got = model.item_graph_embedding(model.learned_graph()).double().numpy()
    np.testing.assert_allclose(got, h, atol=1e-5)


def test_bm3_text_only_loss_has_the_text_alignment_terms_only():
    data, feats = model_kit.tiny_split(), model_kit.single_slot("text")
    p = model_kit.params("BM3", dropout=0.3, cl_weight=0.7, reg_weight=0.2)
    model = model_kit.build(BM3, p, data, feats)
    assert list(model.content.tables) == ["text"]
    torch.manual_seed(5)
    got = model.loss(USERS, POS, NEG)
    torch.manual_seed(5)  # the same dropout draws, in the model's order: users, items, text
    d = model.embedding_size
    user_noise, item_noise, text_noise = (
        F.dropout(torch.ones(n, d), 0.3) for n in (data.n_users,) + (data.n_items,) * 2
    )
    uh, ih = model.propagate()
    ht = model.content("text")
    g = model.predictor

    def c(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1 - F.cosine_similarity(a, b.detach(), dim=-1).mean()

    target_i = ih[POS] * item_noise[POS]
    expected = (
        c(g(uh[USERS]), target_i)
        + c(g(ih[POS]), uh[USERS] * user_noise[USERS])
        + 0.2 * (uh.norm() + ih.norm()) / data.n_items
        + 0.7 * (c(g(ht[POS]), target_i) + c(g(ht[POS]), (ht * text_noise)[POS]))
    )
    torch.testing.assert_close(got, expected)


def test_dragon_image_only_representations_have_the_image_branch_only():
    data, feats = model_kit.tiny_split(), model_kit.single_slot("image")
    p = model_kit.params("DRAGON")
    model = model_kit.build(DRAGON, p, data, feats)
    assert not hasattr(model, "user_weight") and list(model.gcns) == ["image"]
    model.on_epoch_start(0)
    u, i = model.representations()
    gcn, a, nu = model.gcns["image"], model.adj.to_dense(), data.n_users
    x = F.normalize(
        torch.cat([gcn.preference, gcn.mlp_out(F.leaky_relu(gcn.mlp_in(torch.tensor(feats["image"]))))]), dim=1
    )
    v = x + a @ x + a @ a @ x
    s = graph.knn_graph(torch.tensor(feats["image"]), p["knn_k"], weighted=False).to_dense()
    torch.testing.assert_close(i, v[nu:] + torch.linalg.matrix_power(s, p["n_mm_layers"]) @ v[nu:])
    social = torch.stack([(model.epoch_weights[k, :, None] * v[model.epoch_neighbours[k]]).sum(0) for k in range(nu)])
    torch.testing.assert_close(u, v[:nu] + social)


# --- the absent condition -------------------------------------------------------------------------


def test_absent_parses_and_drops_the_modality_leaving_the_input_untouched():
    assert Replacement.parse("absent") == Replacement.parse({"kind": "absent"}) == Replacement("absent", {})
    with pytest.raises(InputError, match="unknown option"):
        Replacement.parse({"kind": "absent", "seed": 1})
    real = model_kit.tiny_features()
    condition = Condition.parse("text-absent", {"text": "absent", "image": "noise"})
    out = condition.apply(real)
    assert condition.absent == ("text",) and list(out) == ["image"] and set(real) == {"text", "image"}
    # the image draws are those of image-noise alone: the absent text still takes its draws first
    assert np.array_equal(out["image"], Condition.parse("image-noise", {"image": "noise"}).apply(real)["image"])


# --- config checks --------------------------------------------------------------------------------


def demo_config(models: list[str], feature_sets: dict | None = None, conditions: dict | None = None) -> dict:
    conf = copy.deepcopy(cfg.load_yaml("config/config.yaml"))
    conf["slices"] = []  # the base demo, without the related studies' slices
    conf["models"] = models
    if feature_sets is not None:
        conf["feature_sets"] = copy.deepcopy(feature_sets)
        conf["datasets"]["demo"]["feature_sets"] = list(feature_sets)
        conf.pop("sweeps")
    conf["conditions"].update(conditions or {})
    return conf


def refused(conf: dict) -> str:
    with pytest.raises(InputError) as err:
        cfg.validate_config(conf)
    return str(err.value)


ONE_SLOT = {"img": {"image": "upstream"}}


def test_one_slot_feature_set_runs_the_models_that_can_drop_the_other_modality():
    models = ["BPR", "LightGCN", "VBPR", "BM3", "LATTICE", "FREEDOM", "DRAGON"]
    conf = cfg.validate_config(demo_config(models, {"txt": {"text": "minilm"}, **ONE_SLOT}))
    assert "image" not in conf["feature_sets"]["txt"] and "text" not in conf["feature_sets"]["img"]


@pytest.mark.parametrize("model", ["MGCN", "PGL", "GRCN"])
def test_one_slot_feature_set_refused_for_models_needing_both(model):
    msg = refused(demo_config(["VBPR", model], ONE_SLOT))
    assert "config field 'feature_sets.img'" in msg and model in msg and "missing slot: text" in msg


def test_feature_set_without_a_slot_is_refused():
    assert "config field 'feature_sets.none'" in refused(demo_config(["BPR"], {"none": {}}))


def test_absent_refused_for_models_needing_the_modality():
    msg = refused(demo_config(["VBPR", "SMORE"], conditions={"image-absent": {"image": "absent"}}))
    assert "config field 'conditions.image-absent'" in msg and "SMORE" in msg and "missing slot: image" in msg
    cfg.validate_config(demo_config(["BPR", "VBPR", "FREEDOM"], conditions={"image-absent": {"image": "absent"}}))


@pytest.mark.parametrize(
    ("feature_sets", "condition"),
    [(None, {"text": "absent", "image": "absent"}), (ONE_SLOT, {"image": "absent"})],
)
def test_dropping_every_modality_is_refused(feature_sets, condition):
    msg = refused(demo_config(["BPR", "VBPR"], feature_sets, {"void": condition}))
    assert "conditions.void" in msg and "VBPR needs text or image features, but both are missing" in msg


# --- runs and the workflow ------------------------------------------------------------------------


def test_run_checks_the_slots_left_before_training(tmp_path):
    from mmknockout.run import train_run

    files = model_kit.write_tiny_dataset(tmp_path)
    common = {"inter": files["inter"], "user_graph": None, "item_graph": None}
    with pytest.raises(InputError, match="MGCN cannot run without text features"):
        spec = model_kit.run_spec("MGCN", model_kit.params("MGCN"))
        train_run(spec, features={"image": files["features"]["image"]}, **common, **model_kit.run_outputs(tmp_path))
    assert not (tmp_path / "metrics.json").exists()
    spec = model_kit.run_spec("VBPR", model_kit.params("VBPR"), "text-absent", {"text": "absent"})
    record = train_run(spec, features=files["features"], **common, **model_kit.run_outputs(tmp_path / "run"))
    assert record["status"] == "ok"


def test_dry_run_of_a_one_slot_feature_set_needs_no_text_features(tmp_path):
    from mmknockout import paths

    from workflow_kit import snakemake, workflow_copy

    work = workflow_copy(tmp_path / "wf")
    conf = yaml.safe_load((work / "tests/config/tiny.yaml").read_text())
    conf["feature_sets"] = copy.deepcopy(ONE_SLOT)
    conf["datasets"]["demo"]["feature_sets"] = ["img"]
    conf["conditions"] = {"baseline": {}, "text-absent": {"text": "absent"}}
    conf["figures"]["conditions"] = ["baseline"]
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(conf))
    out = snakemake(work, "-n", "--configfile", str(tmp_path / "one.yaml")).stdout
    image = paths.fill(paths.IMAGE_FEATURES, dataset="demo", encoder="upstream")
    trains = [block for block in out.split("rule ")[1:] if block.startswith("train:")]
    assert len(trains) == 6  # BPR, VBPR, FREEDOM x 2 conditions
    assert sum(image in block for block in trains) == 4  # every run of a model that reads features
    assert "features/text_" not in out
