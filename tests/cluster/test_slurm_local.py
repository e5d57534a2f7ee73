"""End-to-end run of the tiny config on a real single-node SLURM cluster (run_slurm_test.sh).

Opt-in: it installs Debian packages, starts root daemons and takes a few minutes, so it runs only
with MMK_SLURM_TEST=1 (CI sets it). What it checks is described at the top of run_slurm_test.sh.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "run_slurm_test.sh"

pytestmark = pytest.mark.skipif(
    os.environ.get("MMK_SLURM_TEST") != "1",
    reason="SLURM end-to-end test is opt-in: set MMK_SLURM_TEST=1 (needs root, apt-get and ~3-10 minutes)",
)


def test_tiny_workflow_through_local_slurm(tmp_path):
    env = dict(
        os.environ,
        MMK_PYTHON=os.environ.get("MMK_PYTHON", sys.executable),
        MMK_SLURM_ARTIFACTS=os.environ.get("MMK_SLURM_ARTIFACTS", str(tmp_path / "artifacts")),
    )
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1500)
    out = r.stdout + r.stderr
    print(out[-6000:])
    assert r.returncode == 0, f"run_slurm_test.sh failed (exit {r.returncode}):\n{out[-8000:]}"
    assert "SLURM end-to-end test: PASSED" in r.stdout
    assert "--gpus=1" in r.stdout and "rule_train_train" in r.stdout
