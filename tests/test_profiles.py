"""The Snakemake profiles (profiles/slurm, profiles/local) without a cluster, a GPU or conda.

* the profile files parse, every key is a flag this Snakemake (plus the SLURM executor plugin)
  knows, the site-specific keys are left as commented placeholders, and the GPU settings avoid
  the plugin's known traps;
* `snakemake -n --profile profiles/slurm` succeeds with a PATH that has `which` and a stand-in
  `conda` but no SLURM tools (a dry run never calls sbatch), and the dry run's resolved
  resources of a train job are the ones the profile promises (gpu, mem_mb, runtime, cpus);
* the same for profiles/local, whose train jobs ask for the GPU only when training.device is cuda;
* the test-only profile of the local SLURM cluster test mirrors profiles/slurm where it matters.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from workflow_kit import install_fake_conda

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "profiles" / "slurm" / "config.yaml"
LOCAL = ROOT / "profiles" / "local" / "config.yaml"
CLUSTER_TEST = ROOT / "tests" / "cluster" / "profile" / "config.yaml"
GPU_RULES = ("train", "text_features")
#: sbatch options the plugin refuses inside slurm_extra (ECOSYSTEM 2.7; a grouped job then hangs)
FORBIDDEN_EXTRA = re.compile(
    r"(^|\s)(--gres|--gpus|--mem|--mem-per-cpu|-p|--partition|-A|--account|-t|--time|"
    r"-c|--cpus-per-task|-n|--ntasks|-C|--constraint|--qos|-D|-J|--job-name|-o|--output)\b"
)


def load(path: Path) -> dict:
    with open(path) as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def listed(value) -> dict[str, str]:
    """`[gpu=1]` or `gpu=1` -> {"gpu": "1"}"""
    items = value if isinstance(value, list) else str(value).split()
    return dict(str(i).split("=", 1) for i in items)


def config_file() -> Path:
    tiny = ROOT / "tests" / "config" / "tiny.yaml"
    return tiny if tiny.exists() else ROOT / "config" / "config.yaml"


def plugin_installed() -> bool:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return False
    return True


needs_plugin = pytest.mark.skipif(
    not plugin_installed(),
    reason="snakemake-executor-plugin-slurm is not installed (pip install snakemake-executor-plugin-slurm==2.8.0)",
)


# --------------------------------------------------------------------------------------------
# static checks
# --------------------------------------------------------------------------------------------


@cache
def snakemake_flags() -> frozenset[str]:
    r = subprocess.run([sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return frozenset(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", r.stdout))


@needs_plugin
@pytest.mark.parametrize("path", [SLURM, LOCAL, CLUSTER_TEST], ids=["slurm", "local", "cluster-test"])
def test_profile_keys_are_snakemake_flags(path):
    unknown = sorted(set(load(path)) - snakemake_flags())
    assert not unknown, f"{path.relative_to(ROOT)}: not a snakemake flag: {unknown}"


def test_slurm_profile_settings():
    p = load(SLURM)
    assert p["executor"] == "slurm"
    assert int(p["jobs"]) >= 1 and int(p["latency-wait"]) >= 30 and int(p["retries"]) >= 1
    assert p.get("rerun-incomplete") is True
    defaults = p["default-resources"]
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(defaults), defaults
    # site-specific values are commented placeholders, never live strings like "<acct>"
    assert "slurm_account" not in defaults and "slurm_partition" not in defaults, defaults
    text = SLURM.read_text()
    for key in ("slurm_account", "slurm_partition", "gpu_model"):
        assert re.search(rf"^\s*#\s*{key}:", text, re.M), f"add a commented '{key}:' placeholder"
    assert not re.search(r"^[^#\n]*<[a-z_]+>", text, re.M), "an uncommented <placeholder> value"
    for rule in GPU_RULES:
        res = p["set-resources"][rule]
        assert int(res["gpu"]) == 1, res
        assert int(res["cpus_per_gpu"]) >= 1, res
        # cpus_per_task wins over cpus_per_gpu in the plugin: the default must be unset (0) here
        assert int(res.get("cpus_per_task", 0)) == 0, res
        assert "gres" not in res, "use gpu (--gpus) or gres, never both"
        assert not FORBIDDEN_EXTRA.search(str(res.get("slurm_extra", ""))), res["slurm_extra"]
    assert "train" in p["set-threads"]
    # many small runs in one submission, on one GPU, run one after the other
    assert int(listed(p["group-components"])["train"]) >= 2
    assert listed(p["resources"]) == {"gpu": "1"}
    assert listed(p["set-resource-scopes"]) == {"gpu": "local"}


def test_local_profile_settings():
    p = load(LOCAL)
    assert "executor" not in p or p["executor"] == "local"
    assert int(p["cores"]) >= 1
    assert listed(p["resources"]).get("gpu") == "1", "the GPU must be a limited resource locally"
    sdm = p.get("software-deployment-method", p.get("sdm"))
    assert p.get("use-conda") is True or sdm == "conda" or sdm == ["conda"]
    assert p.get("rerun-incomplete") is True and p.get("keep-going") is True


def test_cluster_test_profile_mirrors_slurm_profile():
    """The test-only profile may change site values, not the structure under test."""
    real, test = load(SLURM), load(CLUSTER_TEST)
    assert test["executor"] == real["executor"] == "slurm"
    for key in ("resources", "set-resource-scopes"):
        assert listed(test[key]) == listed(real[key]), key
    assert set(listed(test["group-components"])) == set(listed(real["group-components"]))
    assert set(test["set-resources"]) == set(real["set-resources"])
    for rule, res in real["set-resources"].items():
        assert test["set-resources"][rule]["gpu"] == res["gpu"], rule
        assert {"cpus_per_gpu", "cpus_per_task"} <= set(test["set-resources"][rule]), rule
    assert "slurm_account" not in test["default-resources"], "the local cluster test runs without an account"
    assert set(real["default-resources"]) <= set(test["default-resources"]) | {"slurm_account", "slurm_partition"}


# --------------------------------------------------------------------------------------------
# dry runs
# --------------------------------------------------------------------------------------------


def parse_dry_run(out: str) -> dict[str, list[dict[str, str]]]:
    """rule name -> list of resolved resource dicts, one per job, from `snakemake -n` output."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in out.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            rule = m[1]
            continue
        m = re.match(r"^\s*resources: (.*)$", line)
        if m and rule:
            res = {}
            for item in m[1].split(", "):
                k, _, v = item.partition("=")
                res[k.strip()] = v.strip()
            jobs.setdefault(rule, []).append(res)
            rule = None
    return jobs


def fake_path(tmp_path: Path) -> str:
    """A PATH with `which` and a stand-in `conda`, and no sbatch/squeue/sinfo/sacct."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    which = next((Path(d) / "which" for d in ("/usr/bin", "/bin") if (Path(d) / "which").exists()), None)
    if which is None:
        pytest.skip("no `which` binary: the SLURM plugin needs it even for a dry run")
    (bin_dir / "which").symlink_to(which)
    install_fake_conda(bin_dir, tmp_path / "conda")
    for tool in ("sbatch", "squeue", "sinfo", "sacct"):
        assert not (bin_dir / tool).exists()
    return f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"


def dry_run(tmp_path: Path, *args: str) -> tuple[str, dict[str, list[dict[str, str]]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = fake_path(tmp_path)
    env.pop("SNAKEMAKE_PROFILE", None)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--forceall",
        "--workflow-profile",
        "none",
        "--configfile",
        str(config_file()),
        "--conda-prefix",
        str(tmp_path / "condaenvs"),
        *args,
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(cmd)}\n{out[-5000:]}"
    return out, parse_dry_run(out)


@needs_plugin
def test_slurm_profile_dry_run_without_slurm(tmp_path):
    out, jobs = dry_run(tmp_path, "--profile", "profiles/slurm")
    assert jobs.get("train"), f"no train job in the dry run:\n{out[-3000:]}"
    for res in jobs["train"]:
        assert res.get("gpu") == "1", res  # set-resources train: gpu: 1
        assert res.get("mem_mb") == "4000", res  # the rule: 4000 MB x attempt 1
        assert res.get("runtime") == "120", res  # the rule: 120 min x attempt 1
        assert res.get("cpus_per_gpu") == "4", res
        assert res.get("cpus_per_task") == "0", res  # unset, so --cpus-per-gpu is used
    for res in jobs.get("text_features", []):
        assert res.get("gpu") == "1" and res.get("cpus_per_gpu") == "4", res
    other = [
        r for name, rs in jobs.items() if name not in ("train", "text_features", "image_features_encoder") for r in rs
    ]
    assert other, "no CPU job in the dry run"
    for res in other:  # default-resources apply to CPU steps
        assert "mem_mb" in res and "runtime" in res and res.get("gpu", "0") == "0", res
    assert "Conda environment" in out and "envs/train.yaml" in out, "profile must deploy the conda envs"


def test_local_profile_dry_run(tmp_path):
    out, jobs = dry_run(tmp_path, "--profile", "profiles/local")
    assert jobs.get("train"), f"no train job in the dry run:\n{out[-3000:]}"
    device = str(yaml.safe_load(config_file().read_text()).get("training", {}).get("device", "cpu"))
    for res in jobs["train"]:
        assert res.get("mem_mb") == "4000" and res.get("runtime") == "120", res
        assert res.get("gpu") == ("1" if device.startswith("cuda") else "0"), res
    assert "slurm_partition" not in out


def test_local_profile_dry_run_gpu(tmp_path):
    """With training.device: cuda every train job asks for the one GPU the profile provides."""
    cuda = tmp_path / "cuda.yaml"
    cuda.write_text("training:\n  device: cuda\n")
    out, jobs = dry_run(tmp_path, "--profile", "profiles/local", "--configfile", str(config_file()), str(cuda))
    assert jobs.get("train"), out[-3000:]
    assert all(res.get("gpu") == "1" for res in jobs["train"]), jobs["train"]
