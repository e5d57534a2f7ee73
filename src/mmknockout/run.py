"""One training run: load the split and features, apply the knockout, train, write the record.

Outputs (each written atomically): ``metrics.json`` (validation and test metrics
at the best validation epoch, status, timings, parameters, seed, environment), ``history.csv``
(one row per epoch) and ``per_user.npz`` (per-user test metrics, for paired tests).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from .data.dataset import NeighbourGraph, SplitData, item_count
from .device import set_threads
from .errors import InputError
from .features import load_feature_matrix
from .io import atomic_path, require_file, write_json, write_npz
from .knockout import Condition
from .models.registry import check_modalities, get_model_class
from .spec import RunSpec
from .train.trainer import TrainConfig, fit, fit_closed_form

PACKAGE_ROOT = Path(__file__).resolve().parent


def train_run(
    spec: RunSpec,
    *,
    inter: str | Path,
    features: Mapping[str, str | Path | None],
    user_graph: str | Path | None,
    item_graph: str | Path | None,
    metrics: str | Path,
    history: str | Path,
    per_user: str | Path,
    stats: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one run; write its record, history and per-user metrics to the given files.

    ``stats`` (the dataset's stats.json) gives the item count, items without interactions included;
    without it the split's item ids must be contiguous from 0."""
    started = time.time()
    model_cls = get_model_class(spec.model)
    cfg = TrainConfig.from_mapping({**spec.training, "seed": spec.seed})
    data = SplitData.from_inter(inter, None if stats is None else item_count(stats))
    if "user_graph" in model_cls.requires:
        data.user_graph = _load_graph(user_graph, "user graph", spec.model)
    if "item_graph" in model_cls.requires:
        data.item_graph = _load_graph(item_graph, "item graph", spec.model)
    condition = Condition.parse(spec.condition, spec.condition_spec)
    given = [m for m in model_cls.modalities if features.get(m)]
    kept = [m for m in given if m not in condition.absent]
    check_modalities(spec.model, kept, f"run {spec.model}/{spec.feature_set}/{spec.condition}")
    raw = {m: load_feature_matrix(features[m], data.n_items, m) for m in given}
    knocked = condition.apply(raw)
    tensors = {m: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for m, x in knocked.items()}
    if model_cls.closed_form:
        result = fit_closed_form(model_cls, data, tensors, spec.params, cfg)
    else:
        result = fit(model_cls, data, tensors, spec.params, cfg, progress=progress)

    record = {
        "dataset": spec.dataset,
        "feature_set": spec.feature_set,
        "model": spec.model,
        "condition": spec.condition,
        "params_id": spec.params_id,
        "params": dict(spec.params),
        "seed": spec.seed,
        "status": "diverged" if result.diverged else "ok",
        **result.summary(),
        "training": {k: v for k, v in vars(cfg).items()},
        "seconds": {
            "train": result.seconds_train,
            "eval": result.seconds_eval,
            "total": time.time() - started,
            "per_epoch": result.seconds_train / max(result.epochs_run, 1),
        },
        "environment": environment(cfg.device),
    }
    with atomic_path(history) as tmp:
        pd.DataFrame(result.history).to_csv(tmp, index=False)
    test = result.test_per_user
    write_npz(
        per_user,
        users=test.users if test else np.zeros(0, np.int64),
        **({k: v for k, v in test.per_user.items()} if test else {}),
    )
    write_json(metrics, record)
    return record


def train_step(
    *,
    spec: Mapping[str, Any],
    inter: str,
    metrics: str,
    history: str,
    per_user: str,
    text: str | None = None,
    image: str | None = None,
    user_graph: str | None = None,
    item_graph: str | None = None,
    stats: str | None = None,
    threads: int | None = None,
) -> None:
    """Workflow step: one training run; the inputs a model does not read, and the slots the feature set
    leaves empty, are simply not given."""
    set_threads(threads)
    train_run(
        RunSpec.from_dict(spec),
        inter=inter,
        features={"text": text, "image": image},
        user_graph=user_graph,
        item_graph=item_graph,
        metrics=metrics,
        history=history,
        per_user=per_user,
        stats=stats,
        progress=True,
    )


def _load_graph(path: str | Path | None, what: str, model: str) -> NeighbourGraph:
    missing = f"{model} needs the {what} file, not found: {path}"
    if not path:
        raise InputError(missing)
    return NeighbourGraph.load(require_file(path, what, missing=missing))


def environment(device: str) -> dict[str, Any]:
    """Versions, device and provenance of this run.

    ``git_commit`` is null when the package does not run from a git checkout (e.g. a copy of the
    workflow); ``source_sha256`` identifies the package source in every case.
    """
    return {
        "mmknockout": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "source_sha256": source_sha256(),
        "host": platform.node(),
    }


@functools.cache
def source_sha256(root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the package's ``*.py`` files in sorted path order (each path, size and contents)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def git_commit() -> str | None:
    """HEAD of the git checkout the package runs from, or None (no git, or the package is not tracked)."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=5, check=False)

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None  # no repository, or one that does not track this copy of the package
        out = git("rev-parse", "--verify", "HEAD")
        commit = out.stdout.strip() if out.returncode == 0 else ""
        return commit or None
    except (OSError, subprocess.SubprocessError):
        return None
