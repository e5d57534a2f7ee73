"""End to end: the tiny config through the real Snakemake workflow, then nothing left to do."""

import json

import pandas as pd
import pytest

from workflow_kit import snakemake


@pytest.fixture(scope="module")
def finished(finished_tiny):
    return finished_tiny


def test_table_and_figure(finished):
    table = pd.read_csv(finished / "results/tables/knockout.csv")
    assert set(table["model"]) == {"BPR", "VBPR", "FREEDOM"}
    assert set(table["condition"]) == {"baseline", "dual-noise"}
    assert (table["status"] == "ok").all()
    assert table.loc[table["condition"] == "baseline", "NDCG@10 change %"].eq(0).all()
    assert (finished / "results/figures/knockout_change.png").stat().st_size > 10_000


def test_run_record_is_complete(finished):
    import numpy as np

    from mmknockout.config import grid_points, params_id, parse_params_id
    from mmknockout.data.dataset import TEST, SplitData
    from mmknockout.train.metrics import metric_names

    runs = finished / "results/runs"
    paths = sorted(runs.rglob("metrics.json"))
    assert len(paths) == 6  # 3 models x 2 conditions, one demo grid point and one seed each
    for path in paths:
        record = json.loads(path.read_text())
        dataset, feature_set, model, condition, pid, seed_dir = path.parent.relative_to(runs).parts
        keys = ("dataset", "feature_set", "model", "condition")
        assert [record[k] for k in keys] == [dataset, feature_set, model, condition]
        assert record["seed"] == 999 and seed_dir == f"seed{record['seed']}"
        assert record["params_id"] == pid and record["params"] == parse_params_id(model, pid)
        assert pid in {params_id(point) for point in grid_points(model, "demo")}
        assert record["status"] == "ok" and not record["diverged"]
        assert 0 <= record["best_epoch"] < record["epochs_run"] <= record["training"]["epochs"]
        assert record["stop_reason"] in ("early_stopping", "epoch_cap")
        assert record["stop_epoch"] == record["epochs_run"] - 1
        names = set(metric_names(tuple(record["training"]["topk"])))
        assert set(record["valid"]) == names and set(record["test"]) == names
        for value in [*record["valid"].values(), *record["test"].values()]:
            assert 0.0 <= value <= 1.0
        history = pd.read_csv(path.parent / "history.csv")
        assert history["epoch"].tolist() == list(range(record["epochs_run"]))
        best_row = history.loc[history["epoch"] == record["best_epoch"]].iloc[0]
        metric = record["training"]["valid_metric"]
        assert abs(best_row[f"valid_{metric}"] - record["valid"][metric]) < 1e-12
        assert record["seconds"]["train"] > 0 and record["environment"]["torch"]
        per_user = np.load(path.parent / "per_user.npz")
        users = per_user["users"]
        split = SplitData.from_inter(finished / f"results/data/{dataset}/{dataset}.inter")
        np.testing.assert_array_equal(users, np.unique(split.users[split.labels == TEST]))
        for name, value in record["test"].items():
            assert per_user[name].shape == users.shape
            assert abs(float(per_user[name].mean()) - value) < 1e-9, (path, name)


def test_second_call_has_nothing_to_do(finished):
    proc = snakemake(finished, "--configfile", "tests/config/tiny.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_is_clean(finished):
    snakemake(finished, "--configfile", "tests/config/tiny.yaml", "--lint")
