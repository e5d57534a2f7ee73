"""Shared fixtures, and a session check that the tests leave nothing behind in the checkout."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STATUS_AT_START = pytest.StashKey[set[str] | None]()


def checkout_status() -> set[str] | None:
    """``git status`` entries of the checkout (ignored paths excluded); None outside a git checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return set(proc.stdout.splitlines()) if proc.returncode == 0 else None


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STATUS_AT_START] = checkout_status()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test left a new or changed path in the checkout outside ignored places."""
    before = session.config.stash.get(STATUS_AT_START, None)
    after = checkout_status()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        listing = "\n".join(f"  {entry}" for entry in new)
        sys.stderr.write(
            f"\nERROR: the tests left {len(new)} path(s) in the checkout {ROOT}:\n{listing}\n"
            "Write into tmp_path (or an ignored folder) instead.\n"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def finished_tiny(tmp_path_factory):
    """The tiny config run once, uninterrupted, in a throw-away copy of the workflow."""
    from workflow_kit import snakemake, workflow_copy

    work = workflow_copy(tmp_path_factory.mktemp("tiny"))
    snakemake(work, "--configfile", "tests/config/tiny.yaml")
    return work
