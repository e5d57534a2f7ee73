"""Reliability: SIGKILL at several points then --rerun-incomplete gives byte-identical tables;
identical metrics for the same seed; a diverging run is recorded as diverged, not as zeros."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmknockout.analysis.aggregate import knockout_table
from mmknockout.models.bpr import BPR
from mmknockout.run import train_run
from mmknockout.train.trainer import TrainConfig, fit

import model_kit
from workflow_kit import snakemake, workflow_copy

TABLES = ["knockout.csv", "significance.csv", "table3_bm3_slmrec_vbpr.csv", "appendix/table4_baseline.csv"]


def start(work: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        "tests/config/tiny.yaml",
        "--rerun-incomplete",
    ]
    return subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> bool:
    """SIGKILL the whole process group as soon as ``ready()``; False if the run ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.wait()
    return False


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_identical_tables(tmp_path_factory, finished_tiny):
    work = workflow_copy(tmp_path_factory.mktemp("killed"))
    logs = work / "logs"
    points = {
        "feature extraction": lambda: (logs / "text_features").exists(),
        "training": lambda: len(list((logs / "train").rglob("*.log"))) >= 2 if (logs / "train").exists() else False,
        "aggregation": lambda: (logs / "aggregate.log").exists() or (logs / "report").exists(),
    }
    killed = []
    for name, ready in points.items():
        if kill_when(start(work), ready):
            killed.append(name)
        snakemake(work, "--configfile", "tests/config/tiny.yaml", "--unlock")
    assert len(killed) >= 2, f"only killed during {killed}"
    snakemake(work, "--configfile", "tests/config/tiny.yaml", "--rerun-incomplete")
    for name in TABLES:
        assert (work / "results/tables" / name).read_bytes() == (
            finished_tiny / "results/tables" / name
        ).read_bytes(), name
    no_temp = [p for p in (work / "results").rglob("*") if ".tmp" in p.name]
    assert not no_temp, f"temporary files left behind: {no_temp[:3]}"


def test_same_seed_gives_identical_metrics(tmp_path):
    files = model_kit.write_tiny_dataset(tmp_path)
    params = {
        "knn_k": 5,
        "mm_image_weight": 0.1,
        "n_mm_layers": 1,
        "n_ui_layers": 2,
        "dropout": 0.5,
        "reg_weight": 0.01,
        "learning_rate": 0.01,
    }
    spec = model_kit.run_spec(
        "FREEDOM",
        params,
        "dual-noise",
        {"text": "noise", "image": "noise"},
        seed=7,
        training={"epochs": 4, "topk": [5, 10]},
    )
    records = [
        train_run(spec, **files, user_graph=None, item_graph=None, **model_kit.run_outputs(tmp_path / f"run{i}"))
        for i in range(2)
    ]
    assert records[0]["test"] == records[1]["test"] and records[0]["valid"] == records[1]["valid"]
    assert (tmp_path / "run0/history.csv").read_text().split("\n")[1].split(",")[:2] == (
        tmp_path / "run1/history.csv"
    ).read_text().split("\n")[1].split(",")[:2]


class DivergingBPR(BPR):
    """BPR whose loss turns NaN from the third epoch on."""

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def loss(self, users, pos, neg):
        loss = super().loss(users, pos, neg)
        return loss * math.nan if self.epoch >= 2 else loss


def test_diverged_run_is_recorded_and_shown_as_diverged():
    data = model_kit.tiny_split()
    result = fit(DivergingBPR, data, {}, {"reg_weight": 0.0}, TrainConfig(epochs=10, topk=(5, 10), seed=1))
    assert result.diverged and result.diverged_epoch == 2 and result.epochs_run == 3
    assert result.best_epoch in (0, 1)
    record = {
        "dataset": "tiny",
        "feature_set": "default",
        "model": "BPR",
        "condition": "dual-noise",
        "seed": 1,
        "status": "diverged",
        "params_id": "p",
        "best_epoch": result.best_epoch,
        "diverged_epoch": 2,
        "test": result.test,
    }
    base = dict(record, condition="baseline", status="ok", diverged_epoch=None)
    table = knockout_table([base, record], ["baseline", "dual-noise"], ["NDCG@10"])
    row = table[table["condition"] == "dual-noise"].iloc[0]
    assert row["status"] == "diverged" and row["diverged_epoch"] == 2
    assert math.isnan(row["NDCG@10"]) and math.isnan(row["NDCG@10 change %"])


def test_nan_before_any_evaluation_keeps_no_metrics():
    class AlwaysNaN(DivergingBPR):
        def on_epoch_start(self, epoch):
            self.epoch = 5

    result = fit(AlwaysNaN, model_kit.tiny_split(), {}, {"reg_weight": 0.0}, TrainConfig(epochs=5, topk=(5,), seed=1))
    assert result.diverged and result.diverged_epoch == 0 and result.best_epoch is None and result.test == {}
