"""Hostile values in config and registry reach the steps as plain values: no shell line carries them.

Every rule that runs package code calls its entry function through ``workflow/scripts/step.py``
(no ``shell:`` directive anywhere), so a path with spaces or shell syntax is a path, and a value
like ``x; touch HACKED #`` is a string. Temporary files left by a killed job are removed at start.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import yaml

from workflow_kit import snakemake, workflow_copy

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "my data; touch HACKED #"


def rule_files() -> list[Path]:
    return [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


def test_no_rule_runs_a_shell_line():
    for path in rule_files():
        assert not re.search(r"^\s+shell:", path.read_text(), re.M), f"{path.name} has a shell: directive"


def tiny_config(work: Path, **changes) -> Path:
    conf = yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())
    conf.update(changes)
    path = work / "hostile.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def test_hostile_paths_and_values_stay_values(tmp_path):
    work = workflow_copy(tmp_path / "wf")
    # the demo ratings, registered from a folder whose name is shell syntax
    folder = tmp_path / HOSTILE
    folder.mkdir()
    shutil.copy(ROOT / "resources/demo/ratings_Demo.csv", folder / "ratings_Demo.csv")
    registry = work / "resources/datasets.yaml"
    reg = yaml.safe_load(registry.read_text())
    reg["datasets"]["demo"]["files"]["ratings"]["path"] = str(folder / "ratings_Demo.csv")
    registry.write_text(yaml.safe_dump(reg))
    # a text encoder whose model name is shell syntax
    conf = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    conf["encoders"]["text"]["minilm"]["model"] = "all-MiniLM-L6-v2; touch HACKED #"
    config = tiny_config(work, encoders=conf["encoders"])
    # a temporary file an interrupted job left behind, and a fresh one of a running job
    stale = work / "results/data/demo/.stats.json.abcd1234.tmp"
    fresh = work / "results/data/demo/.stats.json.efgh5678.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("half")
    fresh.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))

    target = "results/data/demo/features/text_minilm.npy"
    proc = snakemake(work, target, "--configfile", str(config), check=False)
    assert proc.returncode != 0  # no such text encoder
    log = (work / "logs/text_features/demo_minilm.log").read_text()
    assert "text_features: error:" in log and "touch HACKED" in log
    assert (work / "results/data/demo/demo.inter").is_file()  # the split was made from the hostile folder
    assert not list(tmp_path.rglob("HACKED")) and not list(Path.cwd().glob("HACKED"))
    assert not stale.exists() and fresh.exists()
