import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def finished_tiny(tmp_path_factory):
    """The tiny config run once, uninterrupted, in a throw-away copy of the workflow."""
    from workflow_kit import snakemake, workflow_copy

    work = workflow_copy(tmp_path_factory.mktemp("tiny"))
    snakemake(work, "--configfile", "tests/config/tiny.yaml")
    return work
