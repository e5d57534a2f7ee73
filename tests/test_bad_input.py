"""Bad input is rejected early, with a message that names the problem, and exits non-zero."""

import copy
import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mmknockout import cli
from mmknockout.config import load_yaml, parse_params_id, validate_config
from mmknockout.device import resolve_device
from mmknockout.errors import InputError
from mmknockout.knockout import Condition
from mmknockout.train.trainer import TrainConfig

import model_kit

ROOT = Path(__file__).resolve().parents[1]
DEMO = load_yaml(ROOT / "config" / "config.yaml")


def broken(**changes):
    conf = copy.deepcopy(DEMO)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = conf
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return conf


DELETE = object()


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"colour": "blue"}, "Additional properties are not allowed ('colour'"),
        ({"seeds": "999"}, "'seeds'"),
        ({"seeds": [1, 1]}, "'seeds'"),
        ({"grid": "huge"}, "'grid'"),
        ({"training__epochs": "ten"}, "'training.epochs'"),
        ({"training__device": "tpu"}, "'training.device'"),
        ({"training__valid_metric": "AUC"}, "'training.valid_metric'"),
        ({"training__learning_rate": 0.1}, "'training'"),
        ({"selection": "best"}, "'selection'"),
        ({"models": ["FREEDOM", "NotAModel"]}, "unknown model(s) ['NotAModel']"),
        ({"conditions__text-noise": {"text": "loud"}}, "'conditions.text-noise"),
        ({"conditions__odd": {"audio": "noise"}}, "'conditions.odd'"),
        ({"datasets__demo__feature_sets": ["nope"]}, "unknown feature set 'nope'"),
        ({"feature_sets__default__text": "bert"}, "unknown text encoder 'bert'"),
        ({"datasets__demo__source": "ftp"}, "'datasets.demo.source'"),
        ({"preprocessing__kcore": 0}, "'preprocessing.kcore'"),
        ({"sweeps__dataset": "baby"}, "'sweeps.dataset': unknown dataset 'baby'"),
        ({"figures__conditions": ["baseline", "ghost"]}, "unknown condition 'ghost'"),
        ({"conditions__baseline": DELETE}, "'baseline' is a required property"),
    ],
)
def test_config_errors_name_the_field(changes, fragment):
    with pytest.raises(InputError) as err:
        validate_config(broken(**changes))
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"text": "static"}, "unknown knockout 'static'"),
        ({"image": {"kind": "blur"}}, "kind must be one of"),
        ({"image": {"kind": "noise", "sigma": 1}}, "unknown option(s) ['sigma']"),
        ({"video": "noise"}, "unknown modality ['video']"),
    ],
)
def test_condition_errors(spec, fragment):
    with pytest.raises(InputError, match=None) as err:
        Condition.parse("bad", spec)
    assert fragment in str(err.value)


def test_unknown_hyper_parameter_and_training_setting():
    with pytest.raises(InputError, match="unknown hyper-parameter 'depth'"):
        parse_params_id("FREEDOM", "depth~3")
    with pytest.raises(InputError, match="unknown setting"):
        TrainConfig.from_mapping({"epochs": 3, "momentum": 0.9})
    with pytest.raises(InputError, match="valid_metric 'NDCG@7'"):
        TrainConfig.from_mapping({"valid_metric": "NDCG@7"})


def test_gpu_requested_where_none_exists():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")


def run_cli(*argv):
    return cli.main(list(argv))


def test_cli_train_unknown_dataset_condition_model(capsys, tmp_path):
    assert run_cli("train", "--dataset", "nowhere", "--model", "BPR") == 2
    assert "unknown dataset 'nowhere'" in capsys.readouterr().err
    assert run_cli("train", "--dataset", "demo", "--model", "BPR", "--condition", "loud") == 2
    assert "unknown condition 'loud'" in capsys.readouterr().err
    assert run_cli("train", "--dataset", "demo", "--model", "SuperRec") == 2
    assert "unknown model 'SuperRec'" in capsys.readouterr().err


def step(rule, **arguments):
    """Call a workflow step's entry function as its rule would."""
    from mmknockout.workflow import entry_function

    return entry_function(rule)(**arguments)


def test_fetch_checksum_mismatch_leaves_no_file(tmp_path):
    raw = tmp_path / "ratings.csv"
    raw.write_text("A,B,5.0,1\n")
    entry = {"file": "ratings.csv", "source": "local", "path": str(raw), "sha256": "0" * 64}
    out = tmp_path / "out" / "ratings.csv"
    with pytest.raises(InputError, match="sha256"):
        step("fetch_raw", entry=entry, dest=str(out), retries=1)
    assert not out.exists()


def test_prepare_missing_file_and_empty_core(tmp_path):
    def outputs(folder):
        return {
            "inter": str(folder / "x.inter"),
            "stats": str(folder / "stats.json"),
            "item_map": str(folder / "i_id_mapping.csv"),
            "user_map": str(folder / "u_id_mapping.csv"),
        }

    with pytest.raises(InputError, match="none.csv"):
        step(
            "prepare_split",
            ratings=str(tmp_path / "none.csv"),
            seed=1,
            kcore=5,
            deduplicate="error",
            **outputs(tmp_path),
        )
    sparse = tmp_path / "sparse.csv"
    sparse.write_text("".join(f"U{i},I{i},5.0,{i}\n" for i in range(20)))
    with pytest.raises(InputError, match="no interactions left"):
        step("prepare_split", ratings=str(sparse), seed=1, kcore=5, deduplicate="error", **outputs(tmp_path / "o"))
    assert not (tmp_path / "o" / "x.inter").exists()


def test_text_features_corrupt_gzip(tmp_path):
    bad = tmp_path / "meta.json.gz"
    bad.write_bytes(b"definitely not gzip")
    mapping = tmp_path / "i_id_mapping.csv"
    mapping.write_text("asin\titemID\nA\t0\n")
    outputs = {"features": str(tmp_path / "t.npy"), "texts": str(tmp_path / "t.tsv")}
    settings = {"model": "all-MiniLM-L6-v2", "batch_size": 8, "device": "cpu"}
    with pytest.raises(InputError, match="meta.json.gz"):
        step("text_features", metadata=str(bad), item_map=str(mapping), **outputs, **settings)
    line = tmp_path / "meta2.json.gz"
    with gzip.open(line, "wt") as fh:
        fh.write("{'asin': 'A', 'title': 'ok'}\n{'asin': 'B', 'title': \n")
    with pytest.raises(InputError, match="line 2"):
        step("text_features", metadata=str(line), item_map=str(mapping), **outputs, **settings)
    assert not (tmp_path / "t.npy").exists()


def prepared_split(tmp_path):
    rows = [(u, i, 0) for u in range(6) for i in range(6) if (u + i) % 3]
    rows += [(u, (u + 3) % 6, 1) for u in range(6)] + [(u, (u + 6) % 6, 2) for u in range(6)]
    inter = tmp_path / "x.inter"
    inter.write_text(
        "userID\titemID\trating\ttimestamp\tx_label\n" + "".join(f"{u}\t{i}\t5.0\t1\t{part}\n" for u, i, part in rows)
    )
    return inter


def spec_of(model, params):
    from mmknockout.grid import model_config

    return model_kit.run_spec(model, {**model_config(model)["fixed"], **params})


def run_outputs(folder):
    return model_kit.run_outputs(folder)


@pytest.mark.parametrize(
    "matrix, fragment",
    [
        (np.ones((5, 4), np.float32), "rows"),
        (np.where(np.eye(6, 4) > 0, np.nan, 1.0).astype(np.float32), "row 0"),
        (np.where(np.eye(6, 4)[::-1] > 0, np.inf, 1.0).astype(np.float32), "non-finite"),
    ],
)
def test_training_rejects_bad_feature_files(tmp_path, matrix, fragment):
    from mmknockout.run import train_run

    inter = prepared_split(tmp_path)
    np.save(tmp_path / "text.npy", np.ones((6, 3), np.float32))
    np.save(tmp_path / "image.npy", matrix)
    with pytest.raises(InputError) as err:
        train_run(
            spec_of("VBPR", {"reg_weight": 0.1}),
            inter=inter,
            features={"text": tmp_path / "text.npy", "image": tmp_path / "image.npy"},
            user_graph=None,
            item_graph=None,
            **run_outputs(tmp_path / "run"),
        )
    assert "image.npy" in str(err.value) and (fragment in str(err.value) or fragment.lower() in str(err.value).lower())
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_training_requires_graph_files(tmp_path):
    from mmknockout.run import train_run

    with pytest.raises(InputError, match="user graph"):
        train_run(
            spec_of("DualGNN", {}),
            inter=prepared_split(tmp_path),
            features={},
            item_graph=None,
            user_graph=tmp_path / "missing.npz",
            **run_outputs(tmp_path / "run"),
        )


def test_inter_file_with_bad_label_and_gap_in_ids(tmp_path):
    from mmknockout.data.dataset import SplitData

    p = tmp_path / "a.inter"
    p.write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n1\t1\t5\t1\t7\n")
    with pytest.raises(InputError, match="x_label must be 0, 1 or 2; line 3"):
        SplitData.from_inter(p)
    p.write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n2\t1\t5\t1\t1\n")
    with pytest.raises(InputError, match="userID must be contiguous"):
        SplitData.from_inter(p)


@pytest.mark.parametrize(
    "model, key, value, rule",
    [
        ("VBPR", "embedding_size", 0, ">= 1"),
        ("FREEDOM", "knn_k", -5, ">= 1"),
        ("VBPR", "learning_rate", -0.1, "> 0"),
        ("VBPR", "embedding_size", "wide", "int"),
        ("FREEDOM", "mm_image_weight", 2.0, "<= 1"),
    ],
)
def test_bad_hyper_parameter_in_a_model_file_is_refused_at_start_up(monkeypatch, model, key, value, rule):
    from mmknockout import config as cfg

    real = cfg.model_config

    bad_model = model

    def with_bad_value(*args, **kwargs):
        y = copy.deepcopy(real(*args, **kwargs))
        if args[:1] == (bad_model,) or kwargs.get("model") == bad_model:
            y["fixed"][key] = value
        return y

    monkeypatch.setattr(cfg, "model_config", with_bad_value)
    conf = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    with pytest.raises(InputError, match=rf"{model}\.yaml.*'{key}'.*{re.escape(rule)}"):
        cfg.validate_config(conf)


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--epochs", "-1"], ["--threads", "0"]])
def test_cli_train_refuses_non_positive_counts(capsys, args):
    with pytest.raises(SystemExit) as exit_:
        run_cli("train", "--dataset", "demo", "--model", "BPR", *args)
    assert exit_.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_cli_train_refuses_unknown_device_and_bad_params(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no split here: the errors come before any data is read
    config = str(ROOT / "config" / "config.yaml")
    assert run_cli("train", "--configfile", config, "--dataset", "demo", "--model", "BPR", "--device", "tpu") == 2
    assert "training.device" in capsys.readouterr().err
    assert (
        run_cli("train", "--configfile", config, "--dataset", "demo", "--model", "BPR", "--params", "reg_weight~abc")
        == 2
    )
    assert "reg_weight" in capsys.readouterr().err
