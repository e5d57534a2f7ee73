"""``mmknockout estimate``: run counts from the study plan, device hours from measured timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmknockout import config as cfg
from mmknockout import paths
from mmknockout.bench.estimate import ModelTiming, estimate, study_runs, timings_from_file, timings_from_runs
from mmknockout.cli import main
from mmknockout.errors import InputError
from mmknockout.plan import StudyPlan

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**over) -> dict:
    config = cfg.load_yaml(ROOT / "tests" / "config" / "tiny.yaml")
    return cfg.validate_config({**config, **over})


def test_runs_are_every_grid_point_of_every_selection_key_and_the_sweeps():
    config = tiny_config(
        grid="full",
        seeds=[1, 2],
        sweeps={
            "dataset": "demo",
            "reg_weight": [1.0, 0.01],
            "constant": {"values": [0], "reg_weight": [1.0]},
            "noise": {"std": [0.8], "reg_weight": [0.01]},
        },
    )
    runs = study_runs(config)
    grid = {
        paths.fill(paths.METRICS, dataset="demo", feature_set="default", model=m, condition=c, params=p, seed=seed)
        for m in config["models"]
        for p in map(cfg.params_id, cfg.grid_points(m, "full"))
        for c in config["conditions"]
        for seed in config["seeds"]
    }
    sweeps = set(StudyPlan(config).sweep_records())
    assert sweeps - grid, "the sweeps add runs of their own"
    assert set(runs) == grid | sweeps
    assert all(model == f.split("/")[4] for f, model in runs.items())  # results/runs/<ds>/<fs>/<model>/...


def test_hours_are_runs_times_epochs_times_epoch_and_eval_seconds():
    runs = {"a1": "A", "a2": "A", "b1": "B"}
    timings = {"A": ModelTiming(2.0, 1.0, epochs=10, setup_s=4.0), "B": ModelTiming(5.0)}
    result = estimate(runs, timings, epoch_cap=100, startup_s=6.0, packing_gain=2.0)
    rows = {r["model"]: r for r in result.rows}
    assert rows["A"]["hours"] == pytest.approx(2 * (6 + 4 + 10 * 3) / 3600)
    assert rows["B"]["hours"] == pytest.approx((6 + 100 * 5) / 3600) and rows["B"]["capped"]
    assert result.runs == 3 and result.hours == pytest.approx(rows["A"]["hours"] + rows["B"]["hours"])
    assert f"{result.hours / 2:.1f} device hours" in result.markdown()
    forced = estimate(runs, timings, epoch_cap=100, epochs=500)  # never above the cap
    assert {r["model"]: r["epochs"] for r in forced.rows} == {"A": 100, "B": 100}


def test_missing_timing_and_bad_rows_are_named(tmp_path: Path):
    with pytest.raises(InputError, match=r"no timing for model\(s\) \['B'\]"):
        estimate({"x": "A", "y": "B"}, {"A": ModelTiming(1.0)}, epoch_cap=10)
    bad = tmp_path / "times.csv"
    bad.write_text("model,epoch_s\nBPR,0.5\nVBPR,fast\n")
    with pytest.raises(InputError, match="times.csv, line 3"):
        timings_from_file(bad)
    with pytest.raises(InputError, match="no metrics.json"):
        timings_from_runs(tmp_path)


def test_timings_from_records_bench_json_and_csv(tmp_path: Path):
    for i, (train, eval_, total, epochs) in enumerate([(10.0, 2.0, 14.0, 10), (30.0, 3.0, 34.0, 30), (8, 1, 9.5, 4)]):
        run = tmp_path / "runs" / f"r{i}"
        run.mkdir(parents=True)
        seconds = {"train": train, "eval": eval_, "total": total}
        (run / "metrics.json").write_text(json.dumps({"model": "BPR", "epochs_run": epochs, "seconds": seconds}))
    t = timings_from_runs(tmp_path / "runs")["BPR"]
    assert (t.epoch_s, t.eval_s, t.epochs, t.setup_s) == (1.0, 0.2, 10, 1.0)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": [{"model": "BPR", "epoch_s": 1.5, "eval_s": 0.5}, {"model": "X"}]}))
    assert timings_from_file(bench) == {"BPR": ModelTiming(1.5, 0.5)}
    table = tmp_path / "t.csv"
    table.write_text("model,epoch_s,eval_s,epochs\nBPR,2,0.5,40\nVBPR,3,,\n")
    assert timings_from_file(table) == {"BPR": ModelTiming(2.0, 0.5, 40.0), "VBPR": ModelTiming(3.0)}


def test_cli_prints_the_table(tmp_path: Path, capsys):
    times = tmp_path / "t.csv"
    times.write_text("model,epoch_s\nBPR,1\nVBPR,2\nFREEDOM,3\n")
    assert main(["estimate", "--configfile", str(ROOT / "tests/config/tiny.yaml"), "--times", str(times)]) == 0
    out = capsys.readouterr().out
    assert "| **total** | **6** |" in out and "(cap)" in out
