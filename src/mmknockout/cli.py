"""Commands a person runs by hand: ``python -m mmknockout <command>``.

The workflow's steps do not go through here: each rule calls its entry function directly
(:mod:`mmknockout.workflow`). These commands list models, train one run outside the workflow,
run the benchmark and regenerate the bundled demo data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {}


def command(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        COMMANDS[name] = fn
        return fn

    return register


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmknockout", description="Modality-knockout study: models, runs, benchmark.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("models", help="list the registered models, their families and grid sizes")

    s = sub.add_parser("train", help="one training run (dataset, model, condition, grid point, seed) by hand")
    s.add_argument("--configfile", default="config/config.yaml")
    s.add_argument("--dataset", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--condition", default="baseline")
    s.add_argument("--feature-set", help="default: the dataset's first feature set")
    s.add_argument("--params", help="grid point id (key~value+...); default: the first point of the config's grid")
    s.add_argument("--seed", type=int, help="default: the config's first seed")
    s.add_argument("--epochs", type=positive_int, help="override training.epochs")
    s.add_argument("--device", help="override training.device (cpu, auto, cuda, cuda:N)")
    s.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--out-dir", help="default: the workflow's results/runs/... directory")
    s.add_argument("--progress", action="store_true", help="print one line per epoch")

    s = sub.add_parser("bench", help="seconds per epoch / evaluation and peak memory per model (Baby-shaped data)")
    s.add_argument("--models", help="comma-separated (default: every registered model)")
    s.add_argument("--scales", default="1,2,4", help="interaction multiples of Baby")
    s.add_argument(
        "--epochs", type=positive_int, default=1, help="timed whole epochs after one warm-up epoch, at the first scale"
    )
    s.add_argument("--bench-threads", type=positive_int, default=2)
    s.add_argument("--device", default="cpu")
    s.add_argument("--data", help="an MMRec-layout folder to measure on, instead of generated data (--scales unused)")
    s.add_argument("--mmrec", help="an MMRec toolbox checkout: measure it on --data after each model")
    s.add_argument("--eval-repeats", type=positive_int, default=3, help="evaluations timed (median), both sides")
    s.add_argument("--out", default=None, help="default: benchmarks/out")

    s = sub.add_parser("roofline", help="FLOPs and bytes per training batch against this machine's measured peaks")
    s.add_argument("--models", help="comma-separated (default: every registered model)")
    s.add_argument("--threads", type=positive_int, default=2)
    s.add_argument("--batches", type=positive_int, default=5, help="timed batches per model after a warm-up")
    s.add_argument("--scale", type=float, default=1.0, help="interaction multiple of Baby")
    s.add_argument("--out", default=None, help="default: benchmarks/out")

    s = sub.add_parser("estimate", help="the study's training runs and device hours from measured per-epoch times")
    s.add_argument("--configfile", default="config/paper.yaml")
    timing = s.add_mutually_exclusive_group(required=True)
    timing.add_argument("--runs", help="a folder of finished runs (metrics.json): per-model medians")
    timing.add_argument("--times", help="bench.json, or a CSV with model,epoch_s[,eval_s][,epochs]")
    s.add_argument("--epochs", type=positive_int, help="epochs per run (default: measured, else the epoch cap)")
    s.add_argument("--startup-s", type=float, default=0.0, help="seconds a job takes before its run starts")
    s.add_argument("--packing-gain", type=float, default=1.0, help="measured throughput gain of packed runs")

    s = sub.add_parser(
        "parity", help="test metrics against the MMRec toolbox on one MMRec-layout folder, several seeds"
    )
    s.add_argument("--mmrec", required=True, help="an MMRec toolbox checkout")
    s.add_argument("--data", required=True, help="an MMRec-layout folder")
    s.add_argument("--models", help="comma-separated (default: every registered model the toolbox has)")
    s.add_argument("--seeds", type=positive_int, default=3, help="seeds 999, 1000, ...")
    s.add_argument("--epochs", type=positive_int, default=100, help="epoch cap, both sides")
    s.add_argument("--patience", type=positive_int, default=20, help="early stopping, both sides")
    s.add_argument("--valid-metric", default="Recall@20")
    s.add_argument("--threads", type=positive_int, default=2)
    s.add_argument("--out", default="benchmarks/parity", help="parity.jsonl (resumed) and parity.md go here")

    s = sub.add_parser("make-demo", help="regenerate the bundled demo dataset (deterministic)")
    s.add_argument("out", nargs="?", default="resources/demo")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except InputError as exc:
        print(f"mmknockout {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


@command("models")
def _models(args: argparse.Namespace) -> None:
    from .config import grid_points
    from .models.registry import FAMILIES, MODELS, available_models

    available = set(available_models())
    for name in MODELS:
        status = f"{len(grid_points(name)):4d} grid points" if name in available else "   not installed"
        print(f"{name:10s} {FAMILIES[name]:24s} {status}")


@command("train")
def _train(args: argparse.Namespace) -> None:
    from . import config as cfg
    from . import paths
    from .device import set_threads
    from .run import train_run
    from .spec import first_run

    config = cfg.load_yaml(args.configfile)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    if overrides and isinstance(config, dict):  # checked by the schema like the file's own values
        config["training"] = {**(config.get("training") or {}), **overrides}
    config = cfg.validate_config(config)
    spec = first_run(config, args.dataset, args.model, args.condition, args.feature_set, args.params, args.seed)
    set_threads(args.threads)
    out = Path(args.out_dir or paths.fill(paths.RUN, **spec.wildcards))
    graphs = {
        g: paths.fill(p, dataset=spec.dataset)
        for g, p in (("user_graph", paths.USER_GRAPH), ("item_graph", paths.ITEM_GRAPH))
    }
    record = train_run(
        spec,
        inter=paths.fill(paths.INTER, dataset=spec.dataset),
        features=spec.feature_files(),
        **graphs,
        metrics=out / "metrics.json",
        history=out / "history.csv",
        per_user=out / "per_user.npz",
        stats=paths.fill(paths.STATS, dataset=spec.dataset),
        progress=args.progress,
    )
    summary = {k: record[k] for k in ("model", "condition", "status", "stop_reason", "best_epoch", "epochs_run")}
    summary["test"] = {m: round(v, 4) for m, v in record["test"].items() if m.endswith(("@10", "@20"))}
    print(json.dumps(summary, indent=2))


@command("bench")
def _bench(args: argparse.Namespace) -> None:
    from . import paths
    from .bench.run import run
    from .models.registry import CLOSED_FORM, available_models

    out = Path(args.out or paths.BENCH_OUT)
    # the benchmark times training epochs: the closed-form models have none
    models = args.models.split(",") if args.models else [m for m in available_models() if m not in CLOSED_FORM]
    scales = [float(x) for x in args.scales.split(",")]
    run(
        models,
        scales,
        args.epochs,
        args.bench_threads,
        args.device,
        out,
        data=args.data,
        mmrec=args.mmrec,
        eval_repeats=args.eval_repeats,
    )
    print((out / "bench.md").read_text())


@command("roofline")
def _roofline(args: argparse.Namespace) -> None:
    from . import paths
    from .bench.roofline import markdown, run
    from .io import write_json, write_text
    from .models.registry import CLOSED_FORM, available_models

    out = Path(args.out or paths.BENCH_OUT)
    # training batches only: the closed-form models have none
    models = args.models.split(",") if args.models else [m for m in available_models() if m not in CLOSED_FORM]
    report = run(models, args.threads, args.batches, args.scale)
    write_json(out / "roofline.json", report)
    write_text(out / "roofline.md", markdown(report))
    print(markdown(report), end="")


@command("estimate")
def _estimate(args: argparse.Namespace) -> None:
    from . import config as cfg
    from .bench.estimate import estimate, study_runs, timings_from_file, timings_from_runs

    config = cfg.validate_config(cfg.load_yaml(args.configfile))
    timings = timings_from_runs(args.runs) if args.runs else timings_from_file(args.times)
    result = estimate(
        study_runs(config), timings, config["training"]["epochs"], args.epochs, args.startup_s, args.packing_gain
    )
    print(result.markdown(), end="")


@command("parity")
def _parity(args: argparse.Namespace) -> None:
    from .bench.mmrec import has_model
    from .bench.parity import run, seeds_of
    from .models.registry import available_models

    models = args.models.split(",") if args.models else [m for m in available_models() if has_model(args.mmrec, m)]
    out = Path(args.out)
    run(args.mmrec, args.data, models, seeds_of(args.seeds), args.epochs, out, args.patience, args.valid_metric,
        args.threads)  # fmt: skip
    print((out / "parity.md").read_text())


@command("make-demo")
def _make_demo(args: argparse.Namespace) -> None:
    from .data.synthetic import make_demo

    make_demo(args.out)
