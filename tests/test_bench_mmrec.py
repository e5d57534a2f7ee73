"""The MMRec driver's protocol (against a fake checkout), the MMRec-folder reader, and the bench and
parity commands end to end on tiny data."""

import json

import numpy as np
import pytest
from fake_mmrec import FAKE_TEST, fake_toolbox, mmrec_folder

from mmknockout.bench import mmrec as driver
from mmknockout.bench import parity
from mmknockout.bench.folder import read_folder
from mmknockout.bench.run import markdown
from mmknockout.bench.run import run as bench
from mmknockout.errors import InputError


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory):
    return fake_toolbox(tmp_path_factory.mktemp("mmrec"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return mmrec_folder(tmp_path_factory.mktemp("data") / "tiny")


def test_folder_takes_the_item_count_from_the_features(folder):
    data, features = read_folder(folder)
    assert data.n_items == 60 and data.items.max() <= 58  # the last item has no interaction
    assert data.n_users == 40 and set(features) == {"text", "image"}
    assert data.user_graph.ids[0, :2].tolist() == [1, 2] and data.item_graph is not None


def test_folder_reads_the_item_graph_file_when_present(tmp_path):
    path = mmrec_folder(tmp_path / "items")
    graph = {i: [np.array([(i + 1) % 60, (i + 2) % 60, (i + 3) % 60]), np.array([2.0, 2.0, 2.0])] for i in range(60)}
    np.save(path / "item_graph_dict_2.npy", np.array(graph, dtype=object), allow_pickle=True)
    data, _ = read_folder(path)
    assert data.item_graph.ids.shape == (60, 3) and data.item_graph.ids[59].tolist() == [0, 1, 2]


def test_folder_refuses_an_item_beyond_the_feature_rows(tmp_path):
    bad = mmrec_folder(tmp_path / "bad")
    np.save(bad / "text_feat.npy", np.zeros((20, 8), np.float32))
    np.save(bad / "image_feat.npy", np.zeros((20, 16), np.float32))
    with pytest.raises(
        InputError, match=r"tiny.inter: line \d+: itemID \d+ is not below the item count 20 \(the feature rows\)"
    ):
        read_folder(bad)


def test_toolbox_yaml_floats_and_first_point(toolbox):
    config = driver.toolbox_config(driver.source_dir(toolbox), "BPR")
    assert driver.first_point(config) == {"reg_weight": 2.0}
    assert driver.compare_points({"reg_weight": 2.0, "lr_scheduler": [1.0, 50]}, config | {"reg_weight": 2.0}) == {}
    assert driver.compare_points({"lr_scheduler": [0.96, 50]}, config) == {"lr_scheduler": ([0.96, 50], [1.0, 50])}
    exponent = fake_toolbox(toolbox.parent / "exp", reg_weight="[1e-4]")  # no decimal point: a float there
    assert driver.first_point(driver.toolbox_config(driver.source_dir(exponent), "BPR")) == {"reg_weight": 1e-4}


def test_grid_check_names_a_differing_first_value(toolbox, tmp_path):
    assert driver.grid_check(toolbox, "BPR") == {}  # our BPR: reg_weight grid starts at 2.0 as well
    other = fake_toolbox(tmp_path / "other", reg_weight="[0.5, 2.0]")
    assert driver.grid_check(other, "BPR") == {"reg_weight": (2.0, 0.5)}


def test_truncated_svd_matches_numpy():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    m = rng.normal(size=(12, 9))
    ut, s, vt = driver._truncated_svd(sp.csc_matrix(m), 4)
    _, s_full, _ = np.linalg.svd(m)
    assert ut.shape == (4, 12) and vt.shape == (4, 9)
    np.testing.assert_allclose(s, s_full[:4], rtol=1e-8)
    # the best rank-4 approximation is unique (distinct singular values), whatever the signs
    u, s_np, v = np.linalg.svd(m)
    np.testing.assert_allclose(ut.T * s @ vt, u[:, :4] * s_np[:4] @ v[:4], atol=1e-8)


def test_scatter_add_matches_a_loop():
    import torch

    rng = np.random.default_rng(1)
    src, index = rng.normal(size=(7, 3)), rng.integers(0, 5, size=7)
    expected = np.zeros((6, 3))
    for row, slot in enumerate(index):
        expected[slot] += src[row]
    got = driver._scatter_add(torch.from_numpy(src), torch.from_numpy(index), dim=0, dim_size=6)
    np.testing.assert_allclose(got.numpy(), expected)


def test_parameter_moved_on_the_cpu_can_be_replaced_as_after_a_gpu_move():
    import torch

    class Toolbox(torch.nn.Module):  # DualGNN's pattern: a moved parameter later replaced by a tensor
        def __init__(self):
            super().__init__()
            self.result_embed = driver._parameter_to(torch.nn.Parameter(torch.ones(3, 2)), "cpu")

    module = Toolbox()
    assert not isinstance(module.result_embed, torch.nn.Parameter)
    assert list(module.parameters()) == []  # not registered, as after .to("cuda")
    module.result_embed = torch.zeros(3, 2)
    moved = driver._parameter_to(torch.nn.Parameter(torch.ones(2)), torch.float64)
    assert moved.dtype == torch.float64


def test_parse_result_reads_the_marked_line_or_names_the_failure():
    out = 'noise\nMMK-RESULT {"epoch_s": 1.5}\nmore noise\n'
    assert driver.parse_result(out, "", 0, "BPR") == {"epoch_s": 1.5}
    assert driver.parse_result("", "Traceback\nValueError: boom\n", 1, "BPR") == {
        "model": "BPR",
        "error": "ValueError: boom",
    }
    assert driver.parse_result("no result\n", "", 0, "BPR")["error"] == "exit status 0, no result line"


def test_driver_epochs_on_a_plain_checkout_writes_nothing_there(toolbox, folder):
    before = sorted(p.name for p in folder.iterdir()), sorted(str(p) for p in toolbox.rglob("*"))
    row = driver.run_driver(toolbox, folder, "BPR", "epochs", threads=1, epochs=2, eval_repeats=2)
    assert "error" not in row, row
    assert row["point"] == {"reg_weight": 2.0}
    assert row["epoch_s"] >= 0.012 and row["eval_s"] >= 0.005 and row["peak_rss_mb"] > 50
    after = (
        sorted(p.name for p in folder.iterdir()),
        sorted(str(p) for p in toolbox.rglob("*") if "__pycache__" not in str(p)),
    )
    assert after == (before[0], [p for p in before[1] if "__pycache__" not in p])  # no cache, no log left behind


def test_driver_fit_passes_seed_epochs_and_metrics(toolbox, folder):
    row = driver.run_driver(toolbox, folder, "BPR", "fit", threads=1, epochs=7, seed=1000, patience=3)
    assert row["epochs_run"] == 7 and row["best_epoch"] == 5
    assert row["test"] == {"Recall@20": FAKE_TEST["recall@20"], "NDCG@20": FAKE_TEST["ndcg@20"]}  # seed 1000 even
    failed = driver.run_driver(toolbox, folder, "BPR", "fit", threads=1, params={"reg_weight": -1})
    assert failed == {"model": "BPR", "error": "ValueError: reg_weight -1 refused by the fake model"}


def test_bench_measures_both_sides_and_reports_the_ratio(toolbox, folder, tmp_path):
    report = bench(
        ["BPR"], [1], epochs=1, threads=1, device="cpu", out_dir=tmp_path, data=folder, mmrec=toolbox, eval_repeats=1
    )
    (row,) = report["results"]
    assert "error" not in row and "error" not in row["mmrec"], row
    table = (tmp_path / "bench.md").read_text()
    assert f"| {row['mmrec']['epoch_s'] / row['epoch_s']:.2f}x |" in table
    assert "MMRec / ours, epoch: median" in table and json.loads((tmp_path / "bench.json").read_text())["mmrec"]


def test_bench_without_data_refuses_mmrec(toolbox, tmp_path):
    with pytest.raises(InputError, match="--mmrec needs --data"):
        bench(["BPR"], [1], epochs=1, threads=1, device="cpu", out_dir=tmp_path, mmrec=toolbox)


def test_parity_runs_both_sides_and_resumes(toolbox, folder, tmp_path):
    summary = parity.run(toolbox, folder, ["BPR"], [999, 1000], epochs=2, out=tmp_path, threads=1)
    rows = parity.read_rows(tmp_path / "parity.jsonl")
    assert sorted((r["side"], r["seed"]) for r in rows) == [
        ("mmrec", 999),
        ("mmrec", 1000),
        ("ours", 999),
        ("ours", 1000),
    ]
    ours = [r for r in rows if r["side"] == "ours"]
    assert all(r["epochs_run"] == 2 and 0 <= r["test"]["Recall@20"] <= 1 for r in ours)
    assert {s["metric"] for s in summary} == {"Recall@20", "NDCG@20"} and all(s["seeds"] == 2 for s in summary)
    parity.run(toolbox, folder, ["BPR"], [999, 1000], epochs=2, out=tmp_path, threads=1)
    assert len(parity.read_rows(tmp_path / "parity.jsonl")) == 4  # nothing trained twice
    assert "| BPR | Recall@20 |" in (tmp_path / "parity.md").read_text()


def test_parity_refuses_a_model_the_toolbox_lacks_and_a_wrong_checkout(toolbox, folder, tmp_path):
    with pytest.raises(InputError, match=r"no configs/model/<model>.yaml for \['VIRAL'\]"):
        parity.run(toolbox, folder, ["BPR", "VIRAL"], [999], epochs=1, out=tmp_path)
    with pytest.raises(InputError, match="not an MMRec checkout"):
        parity.run(tmp_path, folder, ["BPR"], [999], epochs=1, out=tmp_path)


def test_markdown_rows_with_and_without_the_toolbox():
    ours = {"model": "BPR", "scale": 1.0, "epoch_s": 0.5, "est_epoch_s": 0.5, "batch_s": 0.1, "eval_s": 0.2}
    ours |= {"bound_s": 0.1, "peak_rss_mb": 300.0}
    tool = {"epoch_s": 2.0, "eval_s": 1.0, "peak_rss_mb": 400.0, "point_differs": {"reg_weight": [2.0, 0.5]}}
    env = {"torch": "x", "threads": 2, "device": "cpu"}
    other = ours | {"model": "VIRAL", "mmrec": {"model": "VIRAL", "error": "not in the toolbox"}}
    table = markdown({"results": [ours | {"mmrec": tool}, other], "environment": env, "mmrec": "/m"})
    assert (
        "| BPR | 0.500 | 0.500 | nan | nan | 0.200 | 2.00 | 300 | 2.000 (point differs: reg_weight) | 4.00x |" in table
    )
    assert "| 1.000 | 5.00x | 400 |" in table and "| VIRAL |" in table and "failed: not in the toolbox" in table
    assert "median 4.00x, min 4.00x over 1 models" in table
    alone = markdown({"results": [ours], "environment": env, "mmrec": None})
    assert "MMRec" not in alone and "| BPR | 0.500 |" in alone
