"""Run the workflow in a throw-away copy of the repository (results never land in the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ["Snakefile", "src", "workflow", "config", "resources", "envs", "profiles", "tests/config"]


def workflow_copy(dest: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "raw"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


FAKE_CONDA = """#!{python}
# Stand-in for conda: answers only what `snakemake -n --sdm conda` asks; anything else fails.
import json, sys
a = sys.argv[1:]
if a[:1] == ["--version"]:
    print("conda 24.11.3")
elif a[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": "{prefix}", "root_prefix": "{prefix}", "platform": "linux-64",
                      "conda_version": "24.11.3", "envs_dirs": ["{prefix}/envs"], "pkgs_dirs": ["{prefix}/pkgs"]}}))
elif a[:3] == ["config", "--get", "channel_priority"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
else:
    sys.stderr.write("fake conda: not supported: %s\\n" % a)
    sys.exit(1)
"""


def install_fake_conda(bin_dir: Path, prefix: Path) -> Path:
    """Put the stand-in ``conda`` into ``bin_dir`` (for dry runs with ``--sdm conda``)."""
    conda = bin_dir / "conda"
    conda.write_text(FAKE_CONDA.format(python=sys.executable, prefix=prefix))
    conda.chmod(0o755)
    return conda
