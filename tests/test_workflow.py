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
    record = json.loads(next((finished / "results/runs").rglob("metrics.json")).read_text())
    for key in ("valid", "test", "seed", "params", "best_epoch", "environment", "seconds"):
        assert key in record
    assert record["seed"] == 999


def test_second_call_has_nothing_to_do(finished):
    proc = snakemake(finished, "--configfile", "tests/config/tiny.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_is_clean(finished):
    snakemake(finished, "--configfile", "tests/config/tiny.yaml", "--lint")
