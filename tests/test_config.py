"""Configuration: defaults filled from the schema, bad values refused naming the field, strict YAML."""

import copy
import dataclasses
import importlib
import math
import subprocess
import sys
import time

import pytest
import yaml

from mmknockout import config as cfg
from mmknockout import grid
from mmknockout.errors import InputError
from mmknockout.sweeps import sweep_conditions
from mmknockout.train.trainer import TrainConfig

DEMO = cfg.load_yaml("config/config.yaml")


def changed(path, value):
    """The demo config with the value at the dotted ``path`` replaced (``path`` may be new)."""
    conf = copy.deepcopy(DEMO)
    *parents, leaf = path.split(".")
    node = conf
    for p in parents:
        node = node.setdefault(p, {}) if isinstance(node, dict) else node[int(p)]
    node[leaf] = value
    return conf


def refused(conf, *fragments):
    with pytest.raises(InputError) as err:
        cfg.validate_config(conf)
    for fragment in fragments:
        assert fragment in str(err.value)
    return str(err.value)


# --- names that become path parts or wildcards -------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "..", "a..b", "mini(lm", "two words", "a*b", "_x", ".hidden", "x/y", ""])
def test_bad_names_are_refused_everywhere(name):
    demo_ds = DEMO["datasets"]["demo"]
    cases = {
        "datasets": {name: demo_ds},
        "encoders.text": {name: {"model": "m"}, "minilm": {"model": "all-MiniLM-L6-v2"}},
        "encoders.image": {name: {"kind": "upstream"}, "upstream": {"kind": "upstream"}},
        "feature_sets": {**DEMO["feature_sets"], name: {"text": "minilm", "image": "upstream"}},
        "conditions": {**DEMO["conditions"], name: {}},
    }
    for field, value in cases.items():
        msg = refused(changed(field, value), f"config field '{field}'", "not allowed")
        assert "'..'" in msg


def test_good_names_pass():
    conf = changed("conditions", {**DEMO["conditions"], "noise+0.5": {"text": "noise"}, "v1.2_b-c": {}})
    cfg.validate_config(conf)


def test_references_must_be_names():
    refused(changed("datasets.demo.feature_sets", ["../default"]), "'datasets.demo.feature_sets.0'", "not allowed")
    refused(changed("figures.conditions", ["base line"]), "'figures.conditions.0'")
    refused(changed("sweeps.dataset", "../demo"), "'sweeps.dataset'")


def test_model_listed_twice_and_unregistered():
    refused(changed("models", ["BPR", "VBPR", "BPR"]), "config field 'models'", "non-unique")
    refused(changed("models", ["BPR", "../BPR"]), "unknown model(s) ['../BPR']")


def test_feature_set_listed_twice():
    refused(changed("datasets.demo.feature_sets", ["default", "default"]), "'datasets.demo.feature_sets'", "non-unique")


# --- sweeps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sweep-const-1", "sweep-noise-0.8", "sweep-mine"])
def test_sweep_prefix_is_reserved(name):
    refused(
        changed("conditions", {**DEMO["conditions"], name: {"text": "ones"}}),
        f"'conditions.{name}'",
        "reserved for the sweeps",
    )


@pytest.mark.parametrize(
    "path, values, fragment",
    [
        ("sweeps.constant.values", [1, 1.0000001], "'sweep-const-1'"),
        ("sweeps.constant.values", [1e-7, 1.0000001e-7], "'sweep-const-1e-07'"),
        ("sweeps.noise.std", [0.8, 0.80000001], "'sweep-noise-0.8'"),
    ],
)
def test_sweep_values_that_print_alike_are_refused(path, values, fragment):
    refused(changed(path, values), f"config field '{path}'", fragment)


def test_sweep_values_that_print_differently_pass_and_name_one_value_each():
    conf = cfg.validate_config(changed("sweeps.constant.values", [0, 1, 1.5, 10]))
    conds = sweep_conditions(conf["sweeps"])
    assert conds["sweep-const-1.5"]["text"] == {"kind": "constant", "value": 1.5}
    assert grid.params_id({"reg_weight": 1.0000001}) != grid.params_id({"reg_weight": 1.0})


def test_equal_sweep_values_are_refused():
    refused(changed("sweeps.reg_weight", [1.0, 1, 0.01]), "'sweeps.reg_weight'", "non-unique")
    refused(changed("sweeps.noise.std", [0.8, 0.8]), "'sweeps.noise.std'", "non-unique")


def test_sweep_dataset_and_feature_set_must_exist():
    refused(changed("sweeps.dataset", "baby"), "'sweeps.dataset': unknown dataset 'baby'")
    refused(changed("sweeps.feature_set", "vit"), "'sweeps.feature_set'", "not a feature set of dataset 'demo'")


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, value",
    [
        ("conditions.dual-ones.text", {"kind": "constant", "value": math.nan}),
        ("conditions.dual-noise.image", {"kind": "noise", "mean": math.inf}),
        ("conditions.dual-noise.text", {"kind": "noise", "std": -math.inf}),
        ("sweeps.noise.mean", math.nan),
        ("sweeps.noise.std", [0, math.inf]),
        ("sweeps.constant.values", [0, math.nan]),
        ("sweeps.reg_weight", [1.0, math.inf]),
        ("sweeps.constant.reg_weight", [math.nan]),
    ],
)
def test_nan_and_inf_are_refused(path, value):
    refused(changed(path, value), f"config field '{path}", "NaN and infinite numbers are not allowed")


def test_nan_written_in_yaml_is_refused(tmp_path):
    text = tmp_path / "c.yaml"
    text.write_text(yaml.safe_dump(DEMO).replace("reg_weight:\n  - 1.0", "reg_weight:\n  - .nan"))
    with pytest.raises(InputError, match=r"'sweeps\.reg_weight\.0': NaN"):
        cfg.load_config(text)


@pytest.mark.parametrize(
    "path, value",
    [
        ("seeds", [2**32]),
        ("seeds", [-1]),
        ("seeds", [999.0]),
        ("preprocessing.split_seed", 2**40),
        ("conditions.dual-noise.text", {"kind": "noise", "seed": 2**32}),
    ],
)
def test_seeds_outside_32_bits_are_refused(path, value):
    refused(changed(path, value), f"config field '{path}")


def test_largest_seed_passes():
    cfg.validate_config(changed("seeds", [0, 2**32 - 1]))


@pytest.mark.parametrize(
    "path, value, fragment",
    [
        ("preprocessing.user_graph_k", 10**9, "maximum of 10000"),
        ("preprocessing.user_graph_k", 0, "minimum of 1"),
        ("preprocessing.item_graph_k", 10**6, "maximum"),
        ("preprocessing.kcore", 10**6, "maximum"),
        ("training.epochs", 10**9, "maximum"),
        ("training.batch_size", 0, "minimum"),
        ("training.topk", [5, 10, 10**6], "maximum"),
        ("training.topk", [5, 5, 10], "non-unique"),
        ("encoders.text.minilm.batch_size", 10**7, "maximum"),
        ("encoders.image.upstream.dim", 0, "minimum"),
        ("training.patience", 2.5, "not an integer"),
    ],
)
def test_integer_settings_are_bounded(path, value, fragment):
    refused(changed(path, value), f"config field '{path}", fragment)


def test_user_graph_k_bound_is_stated_in_the_schema():
    schema = cfg.load_yaml(cfg.SCHEMA)
    spec = schema["properties"]["preprocessing"]["properties"]["user_graph_k"]
    assert str(spec["maximum"]) in spec["description"]


# --- metrics, conditions, datasets -------------------------------------------------------------


@pytest.mark.parametrize(
    "path, value",
    [
        ("figures.metric", "NDCG@7"),
        ("figures.metric", "AUC@10"),
        ("training.valid_metric", "Recall@100"),
        ("training.topk", [5, 20, 50]),  # the default figures.metric NDCG@10 is then not computed
    ],
)
def test_metrics_must_be_computed(path, value):
    field = "figures.metric" if path == "training.topk" else path
    refused(changed(path, value), f"config field '{field}'")


def test_metric_with_k_in_topk_passes():
    conf = changed("training.topk", [3, 7])
    conf["slices"] = []  # the demo slice's study table reads Recall@20
    conf["training"]["valid_metric"] = "HitRate@3"
    conf["figures"] = {"metric": "MAP@7"}
    cfg.validate_config(conf)


def test_figure_and_feature_set_conditions_must_be_configured():
    refused(changed("figures.conditions", ["baseline", "ghost"]), "'figures.conditions'", "unknown condition 'ghost'")
    refused(changed("feature_sets.default.conditions", ["ghost"]), "'feature_sets.default.conditions'", "'ghost'")


def test_path_on_a_registry_dataset_is_refused():
    refused(
        changed("datasets.demo.path", "/data/mine"), "'datasets.demo.path'", "source: local", "resources/datasets.yaml"
    )


def test_mmrec_dataset_needs_a_path():
    refused(changed("datasets.demo.source", "mmrec"), "'datasets.demo.path': required for source mmrec")


@pytest.mark.parametrize(
    "path",
    [
        "encoders.text.minilm.colour",
        "encoders.image.upstream.colour",
        "encoders.audio",
        "datasets.demo.colour",
        "feature_sets.default.colour",
        "preprocessing.colour",
        "training.colour",
        "sweeps.colour",
        "sweeps.constant.colour",
        "sweeps.noise.colour",
        "figures.colour",
        "conditions.dual-noise.colour",
    ],
)
def test_unknown_keys_are_refused_at_every_level(path):
    refused(
        changed(path, 1),
        "Additional properties are not allowed ('colour'"
        if "colour" in path
        else "Additional properties are not allowed ('audio'",
    )


def test_unknown_key_in_a_replacement_is_refused():
    refused(
        changed("conditions.dual-noise.text", {"kind": "noise", "sigma": 1}),
        "'conditions.dual-noise.text'",
        "('sigma' was unexpected)",
    )
    refused(changed("conditions.dual-noise.text", {"kind": "blur"}), "'conditions.dual-noise.text'", "kind: 'blur'")


def test_device_pattern():
    refused(changed("training.device", "cuda:x"), "'training.device'")
    cfg.validate_config(changed("training.device", "cuda:1"))


# --- defaults ----------------------------------------------------------------------------------


def minimal():
    return {
        "datasets": {"d": {"source": "registry", "feature_sets": ["default"]}},
        "encoders": {"text": {"t": {"model": "m"}}, "image": {"i": {"kind": "vit"}}},
        "feature_sets": {"default": {"text": "t", "image": "i"}},
        "models": ["BPR"],
        "grid": "demo",
        "conditions": {"baseline": {}, "x": {"text": "ones"}},
        "seeds": [1],
        "preprocessing": {"kcore": 5, "split_seed": 1},
        "selection": "valid",
        "sweeps": {
            "dataset": "d",
            "reg_weight": [1.0],
            "constant": {"values": [1], "reg_weight": [1.0]},
            "noise": {"std": [0.1], "reg_weight": [1.0]},
        },
    }


def test_defaults_are_filled_in():
    conf = minimal()
    assert cfg.validate_config(conf) is conf
    assert conf["training"] == {
        "epochs": 1000,
        "patience": 20,
        "batch_size": 2048,
        "eval_batch_size": 4096,
        "valid_metric": "NDCG@5",
        "topk": [5, 10, 20, 50],
        "device": "cpu",
        "evaluation": "toolbox",
        "relevance_threshold": 4,
    }
    assert conf["preprocessing"] == {
        "kcore": 5,
        "split_seed": 1,
        "user_graph_k": 200,
        "item_graph_k": 2,
        "item_graph_min_count": 2,
    }
    assert conf["figures"] == {"metric": "NDCG@10", "conditions": ["baseline", "x"]}
    assert conf["feature_sets"]["default"]["conditions"] == ["baseline", "x"]
    assert conf["encoders"]["text"]["t"]["batch_size"] == 64
    assert conf["encoders"]["image"]["i"] == {"kind": "vit", "dim": 4096, "batch_size": 32}
    assert conf["sweeps"]["feature_set"] == "default" and conf["sweeps"]["noise"]["mean"] == 1.0


def test_training_defaults_match_train_config():
    schema = cfg.load_yaml(cfg.SCHEMA)["properties"]["training"]["properties"]
    for f in dataclasses.fields(TrainConfig):
        if f.name in schema:
            assert schema[f.name]["default"] == (list(f.default) if isinstance(f.default, tuple) else f.default), f.name


def test_snakemake_fills_the_same_defaults():
    from snakemake.utils import validate

    ours, theirs = minimal(), minimal()
    cfg.validate_config(ours)
    validate(theirs, str(cfg.SCHEMA))
    for fs in ours["feature_sets"].values():
        del fs["conditions"]  # derived defaults: filled by validate_config only
    for ds in ours["datasets"].values():
        del ds["kcore"]
    del ours["figures"]["conditions"]
    assert ours == theirs


def test_validation_is_idempotent_and_keeps_given_values():
    conf = cfg.validate_config(copy.deepcopy(DEMO))
    again = cfg.validate_config(copy.deepcopy(conf))
    assert again == conf and conf["training"]["epochs"] == 200


def test_schema_defaults_are_not_shared_between_configs():
    a, b = cfg.validate_config(minimal()), cfg.validate_config(minimal())
    a["training"]["topk"].append(100)
    assert b["training"]["topk"] == [5, 10, 20, 50]


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", "tests/config/tiny.yaml"])
def test_shipped_configs_are_valid(path):
    conf = cfg.load_config(path)
    assert conf["training"]["topk"] and conf["figures"]["metric"] == "NDCG@10"


# --- strict YAML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("training:\n  epochs: 3\n  patience: 2\n  epochs: 5\n", "duplicate key 'epochs' on line 4 (first on line 2)"),
        ("a: {x: 1, x: 2}\n", "duplicate key 'x' on line 1"),
        ("seeds: [1]\nseeds: [2]\n", "duplicate key 'seeds' on line 2"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        cfg.load_yaml(path)
    assert fragment in str(err.value) and "c.yaml" in str(err.value)
    with pytest.raises(InputError, match="duplicate key"):
        cfg.check_config_files([path])


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert cfg.load_yaml(path)["other"] == {"x": 1, "y": 2}


def alias_bomb(levels=9, width=9):
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 1024
    start = time.perf_counter()
    with pytest.raises(InputError, match="aliases expand to more than 10000"):
        cfg.load_yaml(path)
    with pytest.raises(InputError, match="aliases expand"):
        cfg.check_config_files([path])
    assert time.perf_counter() - start < 1.0


def test_modest_aliases_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(alias_bomb(levels=3, width=3) + "r: &r [1]\ns: *r\n")
    assert cfg.load_yaml(path)["s"] == [1]


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(InputError, match="recursive alias"):
        cfg.load_yaml(path)


def test_error_messages_are_bounded():
    huge = "x" * 100_000
    msg = refused(changed("conditions", {**DEMO["conditions"], huge: {}}), "config field 'conditions'")
    assert len(msg) < 600 and "more characters" in msg
    msg = refused(changed("datasets.demo.source", huge), "'datasets.demo.source'")
    assert len(msg) < 600


def test_huge_yaml_error_is_bounded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [" + "1, " * 50_000 + "\n")
    with pytest.raises(InputError) as err:
        cfg.load_yaml(path)
    assert len(str(err.value)) < 600


def test_non_mapping_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a mapping"):
        cfg.load_config(path)
    with pytest.raises(InputError, match="must be a mapping"):
        cfg.check_config_files([path])


# --- model files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"fixed": {}, "grid": {}, "colour": 1}, "field '(top level)': Additional properties"),
        ({"fixed": {}, "grid": {"reg_weight": []}}, "field 'grid.reg_weight'"),
        ({"fixed": {}, "grid": {"reg_weight": [[1, 2]]}}, "field 'grid.reg_weight.0'"),
        ({"fixed": {}, "grid": {"reg_weight": [0.1, 0.1]}}, "field 'grid.reg_weight'"),
        ({"fixed": {}, "grid": {"mode": ["a+b"]}}, "field 'grid.mode.0'"),
        ({"fixed": {"x": {"a": 1}}, "grid": {}}, "field 'fixed.x': {'a': 1} is not of type"),
        ({"fixed": {"x": math.nan}, "grid": {}}, "field 'fixed.x': NaN"),
        ({"fixed": {}, "grid": {"a": [1]}, "demo_grid": {"b": [1]}}, "field 'demo_grid': ['b'] not in 'grid'"),
        ({"grid": {}}, "'fixed' is a required property"),
        ({"fixed": {}, "grid": {"a": [1, "1"]}}, "share the params id 'a~1'"),
    ],
)
def test_model_file_errors_name_file_and_field(tmp_path, body, fragment):
    (tmp_path / "BPR.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(InputError) as err:
        grid.model_config("BPR", str(tmp_path))
        grid.grid_points("BPR", "full", str(tmp_path))
    assert "BPR.yaml" in str(err.value) and fragment in str(err.value)


def test_every_shipped_model_file_is_valid():
    from mmknockout.models import registry
    from mmknockout.models.registry import MODELS

    for model in MODELS:
        for which in ("full", "demo"):
            points = grid.grid_points(model, which)
            assert points
            for p in points:
                registry.validate_params(model, grid.parse_params_id(model, grid.params_id(p)))


def test_unknown_grid_name():
    with pytest.raises(InputError, match="grid must be 'full' or 'demo'"):
        grid.grid_points("BPR", "huge")


# --- module layering ---------------------------------------------------------------------------


def test_grid_and_sweeps_import_neither_config_nor_analysis():
    code = (
        "import sys, mmknockout.grid, mmknockout.sweeps; "
        "bad = [m for m in sys.modules if m == 'mmknockout.config' or m.startswith('mmknockout.analysis')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=_env(), timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _env():
    import os
    from pathlib import Path

    src = str(Path(grid.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize(
    "module, names",
    [
        (
            "mmknockout.config",
            [
                "load_yaml",
                "load_config",
                "validate_config",
                "check_config_files",
                "all_conditions",
                "grid_points",
                "params_id",
                "parse_params_id",
                "model_config",
            ],
        ),
        ("mmknockout.analysis.sweeps", ["SweepRun", "sweep_runs", "sweep_table", "sweep_conditions"]),
    ],
)
def test_callers_names_still_importable(module, names):
    mod = importlib.import_module(module)
    assert [n for n in names if not hasattr(mod, n)] == []
