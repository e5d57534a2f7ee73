"""``python -m mmknockout bench``: per-model training and evaluation cost on Baby-shaped data.

The data are an MMRec-layout folder (``--data``, read as the toolbox reads it:
:mod:`mmknockout.bench.folder`) or, without one, generated Baby-shaped data at each interaction
scale (1x, 2x, 4x Baby), stored once in a temporary folder. Every model is measured in its own
subprocess (clean peak memory): model build, one warm-up epoch, the median of ``epochs`` timed
epochs, and the median of ``eval_repeats`` full-ranking evaluations of all validation users.
Given an MMRec checkout (``--mmrec``), the toolbox is measured on the same folder right after each
model (ours, MMRec, ours, MMRec, ...), with the same threads, epochs and peak-memory reading, at its
default first grid point, which is checked against this project's (:mod:`mmknockout.bench.mmrec`).

The intrinsic bound is measured in the same process as the evaluation: random user and item
embeddings as wide as the model's representations (64 for BPR, 128 for VBPR, ...), the user x item
product in batches, masking of training items and the top-50, i.e. the least work any
full-ranking evaluator of that model must do.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .memory import peak_rss_mb
from .mmrec import child_env, grid_check, has_model, run_driver, source_dir

BATCH_SIZE = 2048


def write_data(folder: Path, scale: float, seed: int, shape: dict[str, int] | None = None) -> None:
    """Generated Baby-shaped data at ``scale``, stored for the measuring subprocesses."""
    from ..data.synthetic import baby_like

    store(folder, *baby_like(scale, seed, shape))


def store(folder: Path, data, features: dict[str, np.ndarray]) -> None:
    """The split, both graphs and the feature matrices, in the layout :func:`load_data` reads."""
    from ..data.graphs import save_graph

    np.savez(
        folder / "split.npz",
        users=data.users,
        items=data.items,
        labels=data.labels,
        shape=np.array([data.n_users, data.n_items]),
    )
    save_graph(data.user_graph, folder / "user_graph.npz")
    save_graph(data.item_graph, folder / "item_graph.npz")
    for name, x in features.items():
        np.save(folder / f"{name}.npy", x)


def load_data(
    folder: Path,
    modalities: tuple[str, ...] = ("text", "image"),
    graphs: tuple[str, ...] = ("user_graph", "item_graph"),
):
    """The stored split, with the given feature matrices and auxiliary graphs only."""
    import torch

    from ..data.dataset import NeighbourGraph, SplitData

    with np.load(folder / "split.npz") as z:
        data = SplitData(int(z["shape"][0]), int(z["shape"][1]), z["users"], z["items"], z["labels"], name="bench")
    for graph in graphs:
        setattr(data, graph, NeighbourGraph.load(folder / f"{graph}.npz"))
    features = {m: torch.from_numpy(np.load(folder / f"{m}.npy")) for m in modalities}
    return data, features


def intrinsic_bound(data, dim: int = 64, ks: int = 50, batch_size: int = 4096, repeats: int = 3) -> float:
    """Seconds for the bare full ranking of all validation users (product, mask, top-k), with
    random ``dim``-wide user and item representations (the model's own width)."""
    import torch

    from ..data.dataset import VALID

    gen = torch.Generator().manual_seed(0)
    users = torch.as_tensor(np.unique(data.part(VALID)[0]))
    u_emb = torch.randn(data.n_users, dim, generator=gen)
    i_emb = torch.randn(data.n_items, dim, generator=gen)
    train = data.train_matrix
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for start in range(0, users.numel(), batch_size):
            batch = users[start : start + batch_size]
            scores = u_emb[batch] @ i_emb.T
            mask = train[batch.numpy()].tocoo()
            scores[
                torch.as_tensor(mask.row, dtype=torch.long), torch.as_tensor(mask.col, dtype=torch.long)
            ] = -torch.inf
            torch.topk(scores, ks, dim=1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def batch_cost(net, sampler, opt, device, warmup: int = 1, timed: int = 3) -> tuple[float, float, int]:
    """(median seconds per training batch, seconds of the per-epoch hook, batches per epoch).

    Used for the larger scales, where whole epochs would take the benchmark past its budget: the
    epoch estimate is ``batch seconds x batches + hook seconds``.
    """
    t0 = time.perf_counter()
    net.on_epoch_start(0)
    start_s = time.perf_counter() - t0
    net.train()
    batches = sampler.epoch(BATCH_SIZE, device)
    times = []
    for k, (users, pos, neg) in enumerate(batches):
        if k == warmup + timed:
            break
        t0 = time.perf_counter()
        loss = net.loss(users, pos, neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    n_batches = -(-sampler.users.size // BATCH_SIZE)
    skip = min(warmup, len(times) - 1)  # tiny data may have fewer batches than the warm-up
    return float(np.median(times[skip:])), start_s, n_batches


def measure(model: str, folder: Path, epochs: int, threads: int, device: str, eval_repeats: int = 3) -> dict[str, Any]:
    """One model at one scale; ``epochs == 0`` skips whole epochs (batch-based estimate only)."""
    import torch

    from .. import config as cfg
    from ..data.dataset import VALID
    from ..models.registry import get_model_class
    from ..train.evaluator import Evaluator, representations
    from ..train.sampler import NegativeSampler
    from ..train.trainer import _train_epoch, keep_freed_memory, make_optimizer, seed_everything

    torch.set_num_threads(threads)
    keep_freed_memory()
    model_class = get_model_class(model)
    data, features = load_data(folder, model_class.modalities, model_class.requires)
    dev = torch.device(device)
    point_id = cfg.params_id(cfg.grid_points(model, "full")[0])
    params = cfg.parse_params_id(model, point_id)
    seed_everything(999)
    t0 = time.perf_counter()
    net = model_class(data, features, params).to(dev)
    build = time.perf_counter() - t0
    opt, _ = make_optimizer(net, params)
    sampler = NegativeSampler(data, seed=999)
    epoch_times = []
    for epoch in range(epochs + 1 if epochs else 0):  # one warm-up epoch, then the timed ones
        t0 = time.perf_counter()
        _train_epoch(net, sampler, opt, epoch, BATCH_SIZE, dev)
        _sync(dev)
        epoch_times.append(time.perf_counter() - t0)
    batch_s, start_s, n_batches = batch_cost(net, sampler, opt, dev)
    evaluator = Evaluator(data, VALID, batch_size=4096, device=dev)
    eval_times = []
    for _ in range(eval_repeats if epochs else 1):  # the evaluation is reported at the first scale only
        t0 = time.perf_counter()
        evaluator.evaluate(net)
        _sync(dev)
        eval_times.append(time.perf_counter() - t0)
    return {
        "model": model,
        "params": point_id,
        "build_s": build,
        "epoch_s": float(np.median(epoch_times[1:])) if epochs else None,
        "warmup_epoch_s": epoch_times[0] if epochs else None,
        "batch_s": batch_s,
        "epoch_start_s": start_s,
        "batches": n_batches,
        "est_epoch_s": batch_s * n_batches + start_s,
        "peak_rss_mb": peak_rss_mb(),  # before the bound, which allocates its own tables
        "eval_s": float(np.median(eval_times)),
        "bound_s": intrinsic_bound(data, representations(net)[1].shape[1]),
        "interactions": int(len(data.users)),
        "train": int(len(data.train_users)),
    }


def run(
    models: list[str],
    scales: list[float],
    epochs: int,
    threads: int,
    device: str,
    out_dir: Path,
    seed: int = 0,
    shape: dict[str, int] | None = None,
    data: str | Path | None = None,
    mmrec: str | Path | None = None,
    eval_repeats: int = 3,
) -> dict[str, Any]:
    """Benchmark ``models``; writes ``bench.json`` and ``bench.md``.

    ``data``: an MMRec-layout folder, measured instead of the generated data (``scales`` and
    ``shape`` then do not apply); ``mmrec``: a toolbox checkout, measured on ``data`` after each
    model. ``shape`` replaces the Baby shape (users, items, interactions, feature widths), for smoke
    tests.
    """
    import torch

    from ..models.registry import CLOSED_FORM

    closed = [m for m in models if m in CLOSED_FORM]
    if closed:
        raise InputError(f"bench times training epochs; {', '.join(closed)} are fitted in closed form, without any")
    if mmrec is not None and data is None:
        raise InputError("bench --mmrec needs --data: the toolbox reads an MMRec-layout folder")
    if mmrec is not None:
        source_dir(mmrec)  # a wrong path fails before anything is measured
    report = {
        "results": [],
        "data": str(data) if data is not None else "generated Baby-shaped",
        "mmrec": str(mmrec) if mmrec is not None else None,
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": threads,
            "device": device,
            "cpu": platform.processor() or platform.machine(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="mmk-bench-") as tmp:
        for scale in [1.0] if data is not None else scales:
            folder = Path(tmp) / f"x{scale:g}"
            folder.mkdir()
            if data is not None:
                from .folder import read_folder

                print(f"[bench] reading {data}", flush=True)
                store(folder, *read_folder(data))
            else:
                print(f"[bench] generating {scale:g}x Baby-shaped data", flush=True)
                write_data(folder, scale, seed, shape)
            first = not report["results"]
            for model in models:
                timed = epochs if first else 0
                row = _measure_ours(model, folder, timed, threads, device, eval_repeats)
                if mmrec is not None:
                    row["mmrec"] = _measure_mmrec(mmrec, data, model, epochs, threads, eval_repeats)
                row["scale"] = scale
                report["results"].append(row)
                print("[bench] " + _progress(row), flush=True)
                _write(out_dir, report)  # after every model: an interrupted run keeps what it measured
    return report


def _write(out_dir: Path, report: dict[str, Any]) -> None:
    from ..io import write_json, write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "bench.json", report)
    write_text(out_dir / "bench.md", markdown(report))


def _measure_ours(model: str, folder: Path, epochs: int, threads: int, device: str, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mmknockout.bench.run", "--child", model, str(folder)]
    cmd += [str(epochs), str(threads), device, str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        return {"model": model, "error": _failure(proc.stderr, proc.returncode)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _failure(stderr: str, returncode: int) -> str:
    """The last line of a failed child's stderr, or how it ended (a negative status: the signal)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines:
        return lines[-1]
    return f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"


def _measure_mmrec(mmrec: str | Path, data: str | Path, model: str, epochs: int, threads: int, repeats: int) -> dict:
    """The toolbox's row for ``model`` (CPU only), with the grid-point check, or an error row."""
    if not has_model(mmrec, model):
        return {"model": model, "error": "not in the toolbox"}
    differ = grid_check(mmrec, model)
    row = run_driver(mmrec, data, model, "epochs", threads=threads, epochs=epochs, eval_repeats=repeats)
    row["point_differs"] = {k: list(v) for k, v in differ.items()}
    return row


def _progress(row: dict[str, Any]) -> str:
    nan = float("nan")
    line = (
        f"{row['scale']:g}x {row['model']}: {row.get('est_epoch_s', nan):.3f} s/epoch (estimate), "
        f"eval {row.get('eval_s', nan):.3f} s, peak {row.get('peak_rss_mb', 0):.0f} MB"
    )
    if "error" in row:
        line += f" (failed: {row['error']})"
    tool = row.get("mmrec")
    if tool is not None:
        line += f"; MMRec {tool.get('epoch_s', nan):.3f} s/epoch, peak {tool.get('peak_rss_mb', 0):.0f} MB"
        line += f" (failed: {tool['error']})" if "error" in tool else ""
    return line


def ratio(toolbox: float | None, ours: float | None) -> float | None:
    """MMRec / ours, or None when either side is missing."""
    return toolbox / ours if toolbox and ours else None


def markdown(report: dict[str, Any]) -> str:
    """The results table: measured and estimated epoch seconds, growth, evaluation, memory, MMRec."""
    rows = [r for r in report["results"] if "error" not in r]
    by = {(r["model"], r["scale"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    scales = sorted({r["scale"] for r in report["results"]})
    env = report["environment"]
    side = report.get("mmrec") is not None
    head = ["model", f"epoch s ({scales[0]:g}x)"] + [f"est. epoch s ({s:g}x)" for s in scales]
    head += ["epoch growth", "batch growth", "eval s", "eval / bound", "peak MB"]
    if side:
        head += ["MMRec epoch s", "MMRec / ours", "MMRec eval s", "MMRec eval / ours", "MMRec peak MB"]
    lines = [
        f"Data: {report.get('data', 'generated Baby-shaped')}; torch {env['torch']}, {env['threads']} threads, "
        f"device {env['device']}" + (f"; MMRec: {report['mmrec']}." if side else "."),
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    ratios = []
    for m in models:
        base = by.get((m, scales[0]))
        if base is None:
            error = next((r["error"] for r in report["results"] if r["model"] == m and "error" in r), "failed")
            lines.append(f"| {m} | failed: {error} |")
            continue
        est = [by[(m, s)]["est_epoch_s"] if (m, s) in by else float("nan") for s in scales]
        scale_ratio = scales[-1] / scales[0]
        growth = (est[-1] / est[0]) / scale_ratio if len(scales) > 1 else float("nan")
        last = by.get((m, scales[-1]), base)
        batch_growth = (last["batch_s"] / base["batch_s"]) / scale_ratio if len(scales) > 1 else float("nan")
        measured = base["epoch_s"] if base.get("epoch_s") is not None else est[0]
        cells = [
            m,
            f"{measured:.3f}",
            *(f"{e:.3f}" for e in est),
            f"{growth:.2f}",
            f"{batch_growth:.2f}",
            f"{base['eval_s']:.3f}",
            f"{base['eval_s'] / base['bound_s']:.2f}",
            f"{base['peak_rss_mb']:.0f}",
        ]
        if side:
            cells += _mmrec_cells(base.get("mmrec") or {"error": "not measured"}, measured, base["eval_s"], ratios)
        lines.append("| " + " | ".join(cells) + " |")
    if ratios:
        lines += [
            "",
            f"MMRec / ours, epoch: median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x over "
            f"{len(ratios)} models.",
        ]
    lines += [
        "",
        f"epoch s: median of timed whole epochs after a warm-up epoch at {scales[0]:g}x. "
        "est. epoch s: median seconds per training batch x batches per epoch + the per-epoch hook.",
        "epoch growth: (epoch estimate at the largest scale / at the smallest) / (scale ratio); 1.0 is "
        "linear. batch growth: the same for one training batch. Models that propagate over the whole "
        "graph in every batch (the toolbox's protocol) pay a batch cost that grows with the graph, "
        "times a number of batches that grows with it too: their epoch growth lies between 1 and "
        "the scale ratio, and batch growth <= 1 means each propagation is linear in the interactions.",
        "eval / bound: full-ranking evaluation of all validation users over the bare product + mask + "
        "top-50 at the model's representation width.",
    ]
    if side:
        lines.append(
            "MMRec: the toolbox on the same folder in its own process right after ours, same threads and "
            "epochs, its first grid point (a differing hyper-parameter is named in the row); its epoch is "
            "pre_epoch_processing + _train_epoch, its evaluation the trainer's evaluate on all validation "
            "users; peak MB is VmHWM on both sides."
        )
    return "\n".join(lines) + "\n"


def _mmrec_cells(tool: dict[str, Any], epoch_s: float, eval_s: float, ratios: list[float]) -> list[str]:
    if "error" in tool:
        return [f"failed: {tool['error']}", "-", "-", "-", "-"]
    r = ratio(tool["epoch_s"], epoch_s)
    ratios.append(r)
    differs = tool.get("point_differs") or {}
    note = f" (point differs: {', '.join(differs)})" if differs else ""
    return [
        f"{tool['epoch_s']:.3f}{note}",
        f"{r:.2f}x",
        f"{tool['eval_s']:.3f}",
        f"{ratio(tool['eval_s'], eval_s):.2f}x",
        f"{tool['peak_rss_mb']:.0f}",
    ]


def _child(argv: list[str]) -> None:
    model, folder, epochs, threads, device, repeats = argv
    print(json.dumps(measure(model, Path(folder), int(epochs), int(threads), device, int(repeats))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
