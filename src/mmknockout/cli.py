"""Command-line interface: ``python -m mmknockout <command>``; every workflow step is a command."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InputError

COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmknockout", description="Modality-knockout study: data, training, tables, figures.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list the registered models, their families and grid sizes")

    s = sub.add_parser("fetch", help="download (or copy) one raw file of the dataset registry and verify its sha256")
    s.add_argument("--registry", default="resources/datasets.yaml")
    s.add_argument("--dataset", required=True), s.add_argument("--role", required=True, help="ratings, metadata or image_features")
    s.add_argument("--retries", type=int, default=3)
    s.add_argument("--out", required=True)

    s = sub.add_parser("prepare", help="clean, k-core, re-index and split an Amazon 2014 ratings file")
    s.add_argument("--ratings", required=True), s.add_argument("--name", required=True)
    s.add_argument("--out-dir", required=True), s.add_argument("--seed", type=int, default=2024)
    s.add_argument("--kcore", type=int, default=5)

    s = sub.add_parser("import-mmrec", help="import a dataset folder in the MMRec layout")
    s.add_argument("--folder", required=True), s.add_argument("--name", required=True)
    s.add_argument("--out-dir", required=True)

    s = sub.add_parser("text-features", help="encode item text (title, brand, categories, description)")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--metadata", required=True), s.add_argument("--item-map", required=True)
    s.add_argument("--model", default="all-MiniLM-L6-v2"), s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", default="auto"), s.add_argument("--out", required=True)
    s.add_argument("--text-out", help="also write the item texts (TSV)")

    s = sub.add_parser("image-features", help="image features from the upstream .b file (mean fill for missing)")
    s.add_argument("--features-file", required=True), s.add_argument("--item-map", required=True)
    s.add_argument("--dim", type=int, default=4096)
    s.add_argument("--out", required=True), s.add_argument("--missing", required=True)

    s = sub.add_parser("download-images", help="download one product image per item from the metadata's imUrl")
    s.add_argument("--metadata", required=True), s.add_argument("--item-map", required=True)
    s.add_argument("--out-dir", required=True), s.add_argument("--index", required=True)
    s.add_argument("--failures", required=True), s.add_argument("--workers", type=int, default=16)

    s = sub.add_parser("vision-features", help="encode downloaded images with ViT-B/16 or ResNet-50")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--index", required=True, help="image index written by download-images")
    s.add_argument("--kind", choices=["vit", "resnet"], required=True), s.add_argument("--model")
    s.add_argument("--batch-size", type=int, default=32), s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True), s.add_argument("--missing", required=True)

    s = sub.add_parser("graphs", help="user-user and item-item co-interaction graphs from the training split")
    s.add_argument("--inter", required=True), s.add_argument("--user-out", required=True)
    s.add_argument("--item-out", required=True), s.add_argument("--user-k", type=int, default=200)
    s.add_argument("--item-k", type=int, default=2), s.add_argument("--item-min-count", type=int, default=2)

    s = sub.add_parser("train", help="one training run (dataset, model, condition, grid point, seed)")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--configfile", default="config/config.yaml")
    s.add_argument("--dataset", required=True), s.add_argument("--model", required=True)
    s.add_argument("--condition", default="baseline"), s.add_argument("--feature-set")
    s.add_argument("--params", help="grid point id (key~value+...); default: the first point of the config's grid")
    s.add_argument("--seed", type=int), s.add_argument("--epochs", type=int), s.add_argument("--device")
    s.add_argument("--out-dir", help="default: the workflow's results/runs/... directory")
    s.add_argument("--progress", action="store_true", help="print one line per epoch")
    s.add_argument("--spec", help="JSON with params, condition_spec and training (how the workflow calls it); "
                                  "overrides what --configfile would give")

    s = sub.add_parser("select", help="pick the best grid point of one model/condition/seed")
    s.add_argument("--metric", default="NDCG@5"), s.add_argument("--selection", default="valid")
    s.add_argument("--out", required=True), s.add_argument("records", nargs="+")

    s = sub.add_parser("aggregate", help="knockout table and relative-change figure from selected runs")
    s.add_argument("--conditions", required=True, help="comma-separated condition order")
    s.add_argument("--figure-conditions", help="comma-separated conditions in the figure (default: all)")
    s.add_argument("--metric", default="NDCG@10"), s.add_argument("--topk", default="5,10,20,50")
    s.add_argument("--table", required=True), s.add_argument("--figure", required=True)
    s.add_argument("selected", nargs="+")

    s = sub.add_parser("sweeps", help="VBPR case-study table and Fig. 4 from the sweep runs")
    s.add_argument("--sweeps", required=True, help="the config's sweeps section as JSON")
    s.add_argument("--metric", default="Recall@10")
    s.add_argument("--table", required=True), s.add_argument("--figure", required=True)
    s.add_argument("records", nargs="+")

    s = sub.add_parser("significance", help="paired tests of every knockout vs baseline (seeds and users)")
    s.add_argument("--metrics", default="NDCG@10,Recall@10,Precision@10")
    s.add_argument("--out", required=True), s.add_argument("selected", nargs="+")

    s = sub.add_parser("study-tables", help="Table 2 (vision-sensitive), Table 3 and the encoder-swap table")
    s.add_argument("--knockout", required=True), s.add_argument("--significance", required=True)
    s.add_argument("--feature-sets", required=True, help='JSON {dataset: [feature sets, main first]}')
    s.add_argument("--threshold", type=float, default=5.0, help="NDCG@10 drop (%%) that makes a model vision-sensitive")
    s.add_argument("--table2", required=True), s.add_argument("--table2-tex", required=True)
    s.add_argument("--table3", required=True), s.add_argument("--table3-tex", required=True)
    s.add_argument("--encoder-swap", required=True)

    s = sub.add_parser("appendix-table", help="one Appendix table (4-10) in the published layout, CSV and LaTeX")
    s.add_argument("--knockout", required=True), s.add_argument("--feature-sets", required=True)
    s.add_argument("--table", type=int, required=True), s.add_argument("--index", required=True)
    s.add_argument("--out", required=True), s.add_argument("--tex", required=True)

    s = sub.add_parser("compare-published", help="our Appendix tables next to the published numbers")
    s.add_argument("--reference-dir", default="resources/reference"), s.add_argument("--datasets", default="")
    s.add_argument("--out", required=True), s.add_argument("--figure", required=True)
    s.add_argument("tables", nargs="*")

    s = sub.add_parser("knockout-figure", help="Fig. 1: NDCG@10 and Recall@10 per model under the noise knockouts")
    s.add_argument("--knockout", required=True), s.add_argument("--dataset", required=True)
    s.add_argument("--feature-set", required=True), s.add_argument("--out", required=True)

    s = sub.add_parser("noise-constant-figure", help="Fig. 2: dual noise vs dual constants, change vs baseline")
    s.add_argument("--knockout", required=True), s.add_argument("--feature-sets", required=True)
    s.add_argument("--metric", default="NDCG@10"), s.add_argument("--out", required=True)

    s = sub.add_parser("embeddings", help="Fig. 3: text vs image embedding map, spectrum and statistics")
    s.add_argument("--text", required=True), s.add_argument("--image", required=True)
    s.add_argument("--encoders", default="", help="text=NAME,image=NAME (labels only)")
    s.add_argument("--title", default="Fig. 3: text vs image item embeddings")
    s.add_argument("--sample", type=int, default=2000), s.add_argument("--seed", type=int, default=0)
    s.add_argument("--table", required=True), s.add_argument("--figure", required=True)

    s = sub.add_parser("runtime", help="runtime table from the Snakemake benchmark files")
    s.add_argument("--benchmarks", default="benchmarks"), s.add_argument("--out", required=True)

    s = sub.add_parser("bench", help="seconds per epoch / evaluation and peak memory per model (Baby-shaped data)")
    s.add_argument("--models", help="comma-separated (default: every registered model)")
    s.add_argument("--scales", default="1,2,4", help="interaction multiples of Baby")
    s.add_argument("--epochs", type=int, default=1, help="timed whole epochs after one warm-up epoch, at the first scale")
    s.add_argument("--bench-threads", type=int, default=2), s.add_argument("--device", default="cpu")
    s.add_argument("--out", default="benchmarks/out")

    s = sub.add_parser("make-demo", help="regenerate the bundled demo dataset (deterministic)")
    s.add_argument("out", nargs="?", default="resources/demo")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)  # oversubscribed OpenMP threads slow small jobs tenfold
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

    avail = set(available_models())
    for name in MODELS:
        status = f"{len(grid_points(name)):4d} grid points" if name in avail else "   not installed"
        print(f"{name:10s} {FAMILIES[name]:24s} {status}")


@command("fetch")
def _fetch(args: argparse.Namespace) -> None:
    from .data.download import fetch_file, load_registry

    datasets = load_registry(args.registry)["datasets"]
    if args.dataset not in datasets:
        raise InputError(f"unknown dataset '{args.dataset}'; {args.registry} has {sorted(datasets)}")
    files = datasets[args.dataset].get("files", {})
    if args.role not in files:
        raise InputError(f"{args.registry}: dataset '{args.dataset}' lists no '{args.role}' file")
    fetch_file(files[args.role], args.out, base_dir=Path.cwd(), retries=args.retries)


@command("prepare")
def _prepare(args: argparse.Namespace) -> None:
    from .data.preprocess import prepare

    print(json.dumps(prepare(args.ratings, args.out_dir, args.name, seed=args.seed, k=args.kcore), indent=2))


@command("import-mmrec")
def _import_mmrec(args: argparse.Namespace) -> None:
    from .data.mmrec import import_mmrec

    import_mmrec(args.folder, args.name, args.out_dir)


@command("text-features")
def _text_features(args: argparse.Namespace) -> None:
    import pandas as pd

    from .data.amazon import read_metadata
    from .data.preprocess import read_mapping
    from .features import text
    from .io import atomic_path, write_npy

    texts = text.item_texts(read_metadata(args.metadata), read_mapping(args.item_map, "item"))
    if args.text_out:
        with atomic_path(args.text_out) as tmp:
            pd.DataFrame({"itemID": range(len(texts)), "text": texts}).to_csv(tmp, sep="\t", index=False)
    device = None if args.device == "auto" else args.device
    write_npy(args.out, text.encode(texts, model_name=args.model, batch_size=args.batch_size, device=device))


@command("image-features")
def _image_features(args: argparse.Namespace) -> None:

    from .data.preprocess import read_mapping
    from .features import image
    from .io import write_npy

    matrix, missing = image.upstream_features(args.features_file, read_mapping(args.item_map, "item"), dim=args.dim)
    write_npy(args.out, matrix)
    image.write_missing(args.missing, missing)


@command("download-images")
def _download_images(args: argparse.Namespace) -> None:

    from .data.amazon import read_metadata
    from .data.images import download_images
    from .data.preprocess import read_mapping
    from .io import atomic_path

    index = download_images(read_metadata(args.metadata), read_mapping(args.item_map, "item"), args.out_dir,
                            args.failures, threads=args.workers)
    with atomic_path(args.index) as tmp:
        index.to_csv(tmp, sep="\t", index=False)
    print(f"{index['path'].notna().sum()} of {len(index)} images available")


@command("vision-features")
def _vision_features(args: argparse.Namespace) -> None:
    import pandas as pd

    from .features import image
    from .features.vision import encode_images
    from .io import write_npy

    index = pd.read_csv(args.index, sep="\t").sort_values("itemID")
    paths = [p if isinstance(p, str) else None for p in index["path"]]
    device = resolve_device_name(args.device)
    matrix, missing_rows = encode_images(paths, args.kind, model=args.model, batch_size=args.batch_size, device=device)
    write_npy(args.out, matrix)
    image.write_missing(args.missing, index["itemID"].to_numpy()[missing_rows].tolist())


def resolve_device_name(name: str) -> str:
    from .train.trainer import resolve_device

    return str(resolve_device(name))


@command("graphs")
def _graphs(args: argparse.Namespace) -> None:
    from .data import graphs
    from .data.dataset import SplitData

    data = SplitData.from_inter(args.inter)
    graphs.save_graph(graphs.user_graph(data, k=args.user_k), args.user_out)
    graphs.save_graph(graphs.item_graph(data, k=args.item_k, min_count=args.item_min_count), args.item_out)


@command("train")
def _train(args: argparse.Namespace) -> None:
    from . import paths
    from .run import train_run

    spec = json.loads(args.spec) if args.spec else spec_from_config(args)
    seed = spec["seed"] if args.seed is None else args.seed
    training = dict(spec["training"])
    if args.epochs:
        training["epochs"] = args.epochs
    if args.device:
        training["device"] = args.device
    fs = spec["feature_set"]
    where = dict(dataset=args.dataset, feature_set=fs["name"], model=args.model, condition=args.condition,
                 params=spec["params_id"], seed=seed)
    record = train_run(
        dataset=args.dataset, model=args.model, params=spec["params"], params_id=spec["params_id"],
        condition=args.condition, condition_spec=spec["condition_spec"], seed=seed,
        inter=paths.fill(paths.INTER, dataset=args.dataset),
        features={m: paths.fill(paths.TEXT_FEATURES if m == "text" else paths.IMAGE_FEATURES,
                                dataset=args.dataset, encoder=fs[m]) for m in ("text", "image")},
        user_graph=paths.fill(paths.USER_GRAPH, dataset=args.dataset),
        item_graph=paths.fill(paths.ITEM_GRAPH, dataset=args.dataset),
        training=training, out_dir=args.out_dir or paths.fill(paths.RUN, **where), feature_set=fs["name"],
        progress=args.progress)
    summary = {k: record[k] for k in ("model", "condition", "status", "best_epoch", "epochs_run")}
    summary["test"] = {m: round(v, 4) for m, v in record["test"].items() if m.endswith(("@10", "@20"))}
    print(json.dumps(summary, indent=2))


def spec_from_config(args: argparse.Namespace) -> dict[str, Any]:
    """Everything one run needs, from a config file (for runs started by hand)."""
    from . import config as cfg

    conf = cfg.load_yaml(args.configfile)
    cfg.validate_config(conf)
    if args.dataset not in conf["datasets"]:
        raise InputError(f"unknown dataset '{args.dataset}'; the config has {sorted(conf['datasets'])}")
    conditions = cfg.all_conditions(conf)
    if args.condition not in conditions:
        raise InputError(f"unknown condition '{args.condition}'; the config has {sorted(conditions)}")
    fs = args.feature_set or conf["datasets"][args.dataset]["feature_sets"][0]
    if fs not in conf["feature_sets"]:
        raise InputError(f"unknown feature set '{fs}'; the config has {sorted(conf['feature_sets'])}")
    pid = args.params or cfg.params_id(cfg.grid_points(args.model, conf["grid"])[0])
    return run_spec(conf, args.model, pid, args.condition, fs, conf["seeds"][0])


def run_spec(conf: dict, model: str, pid: str, condition: str, feature_set: str, seed: int) -> dict[str, Any]:
    from . import config as cfg

    fs = conf["feature_sets"][feature_set]
    return {"params": cfg.parse_params_id(model, pid), "params_id": pid, "seed": seed,
            "condition_spec": cfg.all_conditions(conf)[condition], "training": conf["training"],
            "feature_set": {"name": feature_set, "text": fs["text"], "image": fs["image"]}}


@command("select")
def _select(args: argparse.Namespace) -> None:
    from .analysis.selection import read_json, select
    from .io import write_json

    write_json(args.out, select([read_json(p) for p in args.records], args.metric, args.selection))


@command("aggregate")
def _aggregate(args: argparse.Namespace) -> None:
    from .analysis import figures
    from .analysis.aggregate import knockout_table, write_table
    from .analysis.selection import read_json
    from .train.metrics import metric_names

    conditions = args.conditions.split(",")
    table = knockout_table([read_json(p) for p in args.selected], conditions,
                           metric_names(tuple(int(k) for k in args.topk.split(","))))
    write_table(table, args.table)
    shown = args.figure_conditions.split(",") if args.figure_conditions else conditions
    figures.relative_change(table, args.metric, shown, args.figure)


@command("sweeps")
def _sweeps(args: argparse.Namespace) -> None:
    from .analysis import figures
    from .analysis.aggregate import write_table
    from .analysis.selection import read_json
    from .analysis.sweeps import sweep_runs, sweep_table

    table = sweep_table(sweep_runs(json.loads(args.sweeps)), [read_json(p) for p in args.records],
                        ["Recall@10", "NDCG@10", "Recall@20", "NDCG@20"])
    write_table(table, args.table)
    figures.vbpr_sweeps(table, args.metric, args.figure)


@command("significance")
def _significance(args: argparse.Namespace) -> None:
    from .analysis.selection import read_json
    from .analysis.stats import significance, write_significance

    write_significance(significance([read_json(p) for p in args.selected], args.metrics.split(",")), args.out)


@command("study-tables")
def _study_tables(args: argparse.Namespace) -> None:
    from .analysis.tables import build_study_tables

    build_study_tables(args.knockout, args.significance, json.loads(args.feature_sets), args.threshold,
                       args.table2, args.table2_tex, args.table3, args.table3_tex, args.encoder_swap)


@command("appendix-table")
def _appendix_table(args: argparse.Namespace) -> None:
    from .analysis.tables import build_appendix

    build_appendix(args.knockout, json.loads(args.feature_sets), args.table, args.index, args.out, args.tex)


@command("compare-published")
def _compare_published(args: argparse.Namespace) -> None:
    from .analysis.tables import build_comparison

    comp = build_comparison(args.tables, args.reference_dir, args.out, args.figure,
                            [d for d in args.datasets.split(",") if d])
    print(f"{len(comp)} cells compared")


@command("knockout-figure")
def _knockout_figure(args: argparse.Namespace) -> None:
    from .analysis import plots
    from .analysis.tables import read_knockout, seed_summary

    plots.fig1_knockout(seed_summary(read_knockout(args.knockout), ["NDCG@10", "Recall@10"]), args.dataset,
                        args.feature_set, args.out)


@command("noise-constant-figure")
def _noise_constant_figure(args: argparse.Namespace) -> None:
    from .analysis import plots
    from .analysis.tables import main_feature_set, read_knockout, seed_summary

    main = {d: main_feature_set(f) for d, f in json.loads(args.feature_sets).items()}
    plots.fig2_noise_vs_constant(seed_summary(read_knockout(args.knockout), [args.metric]), main, args.out,
                                 metric=args.metric)


@command("embeddings")
def _embeddings(args: argparse.Namespace) -> None:
    from .analysis.embeddings import build

    encoders = dict(kv.split("=", 1) for kv in args.encoders.split(",") if "=" in kv)
    print(build(args.text, args.image, encoders, args.title, args.sample, args.seed, args.table, args.figure).to_string())


@command("runtime")
def _runtime(args: argparse.Namespace) -> None:
    from .analysis import runtime

    table = runtime.runtime_table(runtime.collect(args.benchmarks))
    runtime.write(table, args.out)
    print(table.to_string())


@command("bench")
def _bench(args: argparse.Namespace) -> None:
    from .bench.run import run
    from .models.registry import available_models

    models = args.models.split(",") if args.models else available_models()
    run(models, [float(x) for x in args.scales.split(",")], args.epochs, args.bench_threads, args.device, Path(args.out))
    print((Path(args.out) / "bench.md").read_text())


@command("make-demo")
def _make_demo(args: argparse.Namespace) -> None:
    from .data.synthetic import make_demo

    make_demo(args.out)
