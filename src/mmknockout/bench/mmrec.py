"""Drive a plain MMRec toolbox checkout (enoche/MMRec) on the CPU, in a subprocess of its own.

``python -m mmknockout.bench.mmrec --mmrec PATH --data FOLDER --model M --mode epochs|fit ...``
prints one line ``MMK-RESULT {json}``. The checkout is used as it is; the CPU compatibility lives
in this process only:

* ``use_gpu: False`` in the toolbox's config, and ``torch.Tensor.cuda`` returns the tensor itself
  (several models and ``utils/data_utils.py`` call ``.cuda()`` unconditionally); ``Parameter.to``
  returns a plain tensor, as a move to the GPU does (DualGNN and DRAGON rely on it);
* ``np.float``, ``np.int``, ``np.bool`` and ``np.object`` (removed from numpy 1.24; the toolbox
  targets 1.21) are the builtins again, and ``scipy.sparse.dok_matrix._update`` (the unchecked
  bulk insert the graph builders call, gone from recent scipy) inserts into its dict;
* modules the toolbox imports but uses only for raw images are stubbed, while its modules are
  imported, when they are not installed: ``torchvision`` and ``lmdb`` (end-to-end image input);
* two compiled extensions, when not installed, are replaced by equivalents with the same calling
  convention: ``torch_scatter.scatter_add`` (the kNN graph normalisation of MGCN and SMORE) by
  torch's ``scatter_add_``, ``sparsesvd`` (PGL's truncated SVD) by
  :func:`scipy.sparse.linalg.svds`.
  ``torch_geometric`` (GRCN, MMGCN, DualGNN, DRAGON) must be installed (pure Python).

The toolbox reads ``configs/`` from its working directory and caches its kNN graphs in the data
folder, so it runs in a temporary directory that links to the checkout's configs and to the data
files: nothing is written into the checkout or the data folder, nothing cached leaks between runs.
The grid point is the model yaml's first value of every ``hyper_parameters`` entry (the toolbox's
first combination), unless ``--params`` gives one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from .memory import peak_rss_mb

RESULT_PREFIX = "MMK-RESULT "
#: MMRec-layout file names (the toolbox's dataset yamls)
DATASET_FIELDS = {
    "USER_ID_FIELD": "userID",
    "ITEM_ID_FIELD": "itemID",
    "TIME_FIELD": "timestamp",
    "field_separator": "\t",
    "vision_feature_file": "image_feat.npy",
    "text_feature_file": "text_feat.npy",
    "user_graph_dict_file": "user_graph_dict.npy",
}
#: numpy aliases of builtins that the toolbox still uses
NUMPY_ALIASES = {"float": float, "int": int, "bool": bool, "object": object}
#: this project's hyper-parameter names that the toolbox spells differently
TOOLBOX_NAMES = {"lr_scheduler": "learning_rate_scheduler"}


def source_dir(checkout: str | Path) -> Path:
    """The toolbox's ``src`` folder (the one holding ``main.py`` and ``configs/``)."""
    root = Path(checkout)
    for src in (root / "src", root):
        if (src / "configs" / "overall.yaml").is_file() and (src / "utils").is_dir():
            return src.resolve()
    raise InputError(f"{checkout}: not an MMRec checkout (no src/configs/overall.yaml)")


class _ToolboxLoader(yaml.SafeLoader):
    """YAML as the toolbox reads it: ``1e-4`` (an exponent without a decimal point) is a float."""


_ToolboxLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def has_model(checkout: str | Path, model: str) -> bool:
    """Whether the toolbox has a config for ``model``."""
    return (source_dir(checkout) / "configs" / "model" / f"{model}.yaml").is_file()


def toolbox_config(src: Path, model: str) -> dict[str, Any]:
    """``overall.yaml`` updated with the model's yaml, as the toolbox merges them."""
    merged: dict[str, Any] = {}
    hyper: list[str] = []
    for path in (src / "configs" / "overall.yaml", src / "configs" / "model" / f"{model}.yaml"):
        values = yaml.load(path.read_text(), Loader=_ToolboxLoader) or {}
        hyper += values.get("hyper_parameters") or []
        merged.update(values)
    merged["hyper_parameters"] = hyper
    return merged


def first_point(config: dict[str, Any]) -> dict[str, Any]:
    """The toolbox's first grid combination: every hyper-parameter list at its first value."""
    return {k: config[k][0] for k in config["hyper_parameters"] if k != "seed" and isinstance(config[k], list)}


def grid_check(checkout: str | Path, model: str) -> dict[str, tuple[Any, Any]]:
    """Where this project's first grid point of ``model`` (its ``fixed`` values and the first value
    of every grid list) disagrees with the toolbox's first combination; empty when they agree."""
    from ..grid import grid_points, params_id, parse_params_id

    toolbox = toolbox_config(source_dir(checkout), model)
    ours = parse_params_id(model, params_id(grid_points(model, "full")[0]))
    return compare_points(ours, {**toolbox, **first_point(toolbox)})


def compare_points(ours: dict[str, Any], toolbox: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Hyper-parameters set on both sides to different values: ``{name: (ours, toolbox)}``."""
    differ = {}
    for key, value in ours.items():
        name = TOOLBOX_NAMES.get(key, key)
        if name in toolbox and not _same(value, toolbox[name]):
            differ[key] = (value, toolbox[name])
    return differ


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# --- inside the driver process --------------------------------------------------------------


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


def _unavailable(what: str):
    def fail(*args: Any, **kwargs: Any):
        raise RuntimeError(f"{what} is not installed; the benchmark driver stubs it (raw-input code path)")

    return fail


def _scatter_add(src, index, dim: int = -1, out=None, dim_size: int | None = None):
    """``torch_scatter.scatter_add`` (sums ``src`` into the slots ``index`` names along ``dim``) on
    torch's own ``scatter_add_``; a 1-d ``index`` is broadcast along ``dim`` as there."""
    import torch

    dim = dim % src.dim()
    if index.dim() == 1:
        shape = [1] * src.dim()
        shape[dim] = -1
        index = index.view(shape).expand_as(src)
    if out is None:
        size = list(src.shape)
        size[dim] = dim_size if dim_size is not None else int(index.max()) + 1 if index.numel() else 0
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
    return out.scatter_add_(dim, index, src)


def _truncated_svd(matrix, k: int):
    """``sparsesvd``'s convention: (ut [k, m], s [k] descending, vt [k, n])."""
    import numpy as np
    from scipy.sparse.linalg import svds

    u, s, vt = svds(matrix.astype(np.float64), k=k)
    order = np.argsort(-s)
    return u[:, order].T, s[order], vt[order]


#: stand-ins for modules the toolbox imports but, for pre-extracted features, never calls
IMPORT_ONLY = {
    "torchvision": {},
    "torchvision.transforms": {},
    "torchvision.transforms.functional": {"pad": _unavailable("torchvision"), "resize": _unavailable("torchvision")},
    "lmdb": {"open": _unavailable("lmdb")},
}


@contextlib.contextmanager
def import_only_stubs() -> Iterator[None]:
    """The stand-ins for the missing :data:`IMPORT_ONLY` modules, present only while the toolbox's
    modules are imported (so that other libraries probing for them still find them absent)."""
    added = [name for name in IMPORT_ONLY if not _installed(name)]
    for name in added:
        sys.modules[name] = _module(name, **IMPORT_ONLY[name])
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def make_cpu_compatible() -> None:
    """The process-wide part of the compatibility layer (see the module docstring)."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Parameter.to = _parameter_to
    for alias, builtin in NUMPY_ALIASES.items():  # removed in numpy 1.24; the toolbox targets 1.21
        if alias not in np.__dict__:
            setattr(np, alias, builtin)
    if not hasattr(sp.dok_matrix, "_update"):  # the unchecked bulk insert, private in older scipy
        sp.dok_matrix._update = lambda self, mapping: self._dict.update(mapping)
    if _installed("torch_geometric"):  # the toolbox's dependency, not this project's
        importlib.import_module("torch_geometric")  # before the shims: it probes for torch_scatter itself
    if not _installed("sparsesvd"):
        sys.modules["sparsesvd"] = _module("sparsesvd", sparsesvd=_truncated_svd)
    if not _installed("torch_scatter"):
        scatter = _unavailable("torch_scatter.scatter")
        sys.modules["torch_scatter"] = _module("torch_scatter", scatter_add=_scatter_add, scatter=scatter)


def _parameter_to(self, *args, **kwargs):
    """``Parameter.to`` as on a GPU: a plain tensor, never the registered parameter itself.

    DualGNN and DRAGON write ``self.result_embed = nn.Parameter(...).to(device)`` and later assign
    a plain tensor to it; a move to the GPU returns a plain tensor, a no-op move on the CPU the
    parameter, which the module would then refuse to replace."""
    import torch

    moved = torch.Tensor.to(self, *args, **kwargs)
    return moved.view_as(moved) if moved is self else moved


def _installed(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _toolbox(module: str, *names: str) -> Any:
    """Attributes of one of the toolbox's modules (one value for one name, else a tuple)."""
    loaded = importlib.import_module(module)
    values = tuple(getattr(loaded, name) for name in names)
    return values[0] if len(values) == 1 else values


def _workspace(src: Path, data: Path, tmp: Path) -> str:
    """Links the configs and the data files into ``tmp``; returns the dataset name."""
    (tmp / "configs").symlink_to(src / "configs")
    inter = sorted(data.glob("*.inter"))
    if len(inter) != 1:
        raise FileNotFoundError(f"{data}: expected exactly one .inter file, found {[p.name for p in inter]}")
    name = inter[0].stem
    linked = tmp / "data" / name
    linked.mkdir(parents=True)
    for path in data.iterdir():
        if path.is_file():
            (linked / path.name).symlink_to(path.resolve())
    return name


def _toolbox_run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], Any, Any, Any, Any]:
    """(grid point, trainer, train, valid, test loaders) of one model, built as the toolbox's quick start does."""
    import torch

    sys.path.insert(0, str(args.src))
    make_cpu_compatible()
    torch.set_num_threads(args.threads)
    with import_only_stubs():  # the toolbox's modules, from its checkout on sys.path
        Config = _toolbox("utils.configurator", "Config")
        EvalDataLoader, TrainDataLoader = _toolbox("utils.dataloader", "EvalDataLoader", "TrainDataLoader")
        RecDataset = _toolbox("utils.dataset", "RecDataset")
        init_logger = _toolbox("utils.logger", "init_logger")
        get_model, get_trainer, init_seed = _toolbox("utils.utils", "get_model", "get_trainer", "init_seed")
        model_class, trainer_class = get_model(args.model), get_trainer()

    name = _workspace(args.src, args.data, tmp)
    os.chdir(tmp)
    settings = {
        **DATASET_FIELDS,
        "gpu_id": 0,
        "use_gpu": False,
        "seed": [args.seed],
        "data_path": str(tmp / "data") + os.sep,
        "inter_file_name": f"{name}.inter",
        "epochs": args.epochs,
        "stopping_step": args.patience,
        "valid_metric": args.valid_metric,
        "save_recommended_topk": False,
    }
    config = Config(args.model, name, settings)
    point = {**first_point(config.final_config_dict), **json.loads(args.params)}
    for key, value in point.items():
        config[key] = value
    config["seed"] = args.seed
    init_logger(config)
    dataset = RecDataset(config)
    train, valid, test = dataset.split()
    for part in (dataset, train, valid, test):  # the toolbox logs these; its loaders need the counts it sets
        logging.getLogger().info(str(part))
    train_data = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
    valid_data = EvalDataLoader(config, valid, additional_dataset=train, batch_size=config["eval_batch_size"])
    test_data = EvalDataLoader(config, test, additional_dataset=train, batch_size=config["eval_batch_size"])
    init_seed(args.seed)
    train_data.pretrain_setup()
    model = model_class(config, train_data).to(config["device"])
    trainer = trainer_class(config, model, False)
    return point, trainer, train_data, valid_data, test_data


def measure_epochs(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Seconds per training epoch (median after one warm-up), evaluation seconds and peak memory."""
    t0 = time.perf_counter()
    point, trainer, train_data, valid_data, _ = _toolbox_run(args, tmp)
    build = time.perf_counter() - t0
    epoch_times = []
    for epoch in range(args.epochs + 1):
        t0 = time.perf_counter()
        trainer.model.pre_epoch_processing()
        trainer._train_epoch(train_data, epoch)
        trainer.lr_scheduler.step()
        epoch_times.append(time.perf_counter() - t0)
    eval_times = []
    for _ in range(args.eval_repeats):
        t0 = time.perf_counter()
        trainer.evaluate(valid_data)
        eval_times.append(time.perf_counter() - t0)
    return {
        "model": args.model,
        "point": point,
        "build_s": build,
        "warmup_epoch_s": epoch_times[0],
        "epoch_s": statistics.median(epoch_times[1:]),
        "eval_s": statistics.median(eval_times),
        "peak_rss_mb": peak_rss_mb(),
    }


def train_fit(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The toolbox's own training with early stopping; test metrics at the best validation epoch."""
    t0 = time.perf_counter()
    point, trainer, train_data, valid_data, test_data = _toolbox_run(args, tmp)
    _, valid, test = trainer.fit(train_data, valid_data=valid_data, test_data=test_data, saved=False, verbose=False)
    epochs_run = len(trainer.train_loss_dict)
    return {
        "model": args.model,
        "seed": args.seed,
        "point": point,
        "epochs_run": epochs_run,
        "best_epoch": epochs_run - 1 - trainer.cur_step,
        "valid": {k.replace("recall", "Recall").replace("ndcg", "NDCG"): float(v) for k, v in valid.items()},
        "test": {k.replace("recall", "Recall").replace("ndcg", "NDCG"): float(v) for k, v in test.items()},
        "seconds": time.perf_counter() - t0,
    }


MODES = {"epochs": measure_epochs, "fit": train_fit}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mmknockout.bench.mmrec")
    p.add_argument("--mmrec", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=sorted(MODES), default="epochs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="epochs: timed epochs after one warm-up; fit: the cap")
    p.add_argument("--eval-repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=999)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--valid-metric", default="Recall@20")
    p.add_argument("--params", default="{}", help="JSON object of hyper-parameters (default: the first point)")
    args = p.parse_args(argv)
    args.src, args.data = source_dir(args.mmrec), args.data.resolve()
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmk-mmrec-") as tmp:
        result = MODES[args.mode](args, Path(tmp))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


# --- in the calling process ----------------------------------------------------------------


def run_driver(mmrec: str | Path, data: str | Path, model: str, mode: str, **options: Any) -> dict[str, Any]:
    """Run the driver in a fresh interpreter; its result, or ``{"model", "error"}`` when it failed."""
    cmd = [sys.executable, "-m", "mmknockout.bench.mmrec", "--mmrec", str(mmrec), "--data", str(data)]
    cmd += ["--model", model, "--mode", mode]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", json.dumps(value) if isinstance(value, dict) else str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    return parse_result(proc.stdout, proc.stderr, proc.returncode, model)


def parse_result(stdout: str, stderr: str, returncode: int, model: str) -> dict[str, Any]:
    """The driver's ``MMK-RESULT`` line, or an error row naming the last line of its stderr."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if returncode == 0 and lines:
        return json.loads(lines[-1][len(RESULT_PREFIX) :])
    tail = [line for line in stderr.strip().splitlines() if line.strip()]
    return {"model": model, "error": tail[-1] if tail else f"exit status {returncode}, no result line"}


def child_env() -> dict[str, str]:
    """The environment of a measuring subprocess: this package importable, whether installed or not."""
    source = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}


if __name__ == "__main__":
    main(sys.argv[1:])
