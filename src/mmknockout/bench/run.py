"""``python -m mmknockout bench``: per-model training and evaluation cost on Baby-shaped data.

For each interaction scale (1x, 2x, 4x Baby) the data are generated once and stored in a temporary
folder; every model is then measured in its own subprocess (clean peak memory): model build,
one warm-up epoch, the median of ``epochs`` timed epochs, and the median of three full-ranking
evaluations of all validation users. The intrinsic bound is measured in the same process as the
evaluation: random user and item embeddings as wide as the model's representations (64 for BPR,
128 for VBPR, ...), the user x item product in batches, masking of training items and the top-50,
i.e. the least work any full-ranking evaluator of that model must do.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: MMRec toolbox seconds per training epoch, same data shape, 2 CPU threads, default parameters
TOOLBOX_EPOCH_SECONDS = {
    "BPR": 0.78,
    "LightGCN": 2.9,
    "VBPR": 5.6,
    "BM3": 21,
    "FREEDOM": 25,
    "SLMRec": 28,
    "MGCN": 28,
    "SMORE": 29,
    "LATTICE": 39,
    "LGMRec": 56,
    "GRCN": 73,
    "DAMRS": 86,
    "DualGNN": 115,
    "MMGCN": 121,
}
BATCH_SIZE = 2048


def write_data(folder: Path, scale: float, seed: int, shape: dict[str, int] | None = None) -> None:
    from ..data.graphs import save_graph
    from ..data.synthetic import baby_like

    data, features = baby_like(scale, seed, shape)
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


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (``VmHWM``; ``ru_maxrss`` would also
    count the parent's memory inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


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
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    n_batches = -(-sampler.users.size // BATCH_SIZE)
    skip = min(warmup, len(times) - 1)  # tiny data may have fewer batches than the warm-up
    return float(np.median(times[skip:])), start_s, n_batches


def measure(model: str, folder: Path, epochs: int, threads: int, device: str) -> dict[str, Any]:
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
    params = cfg.parse_params_id(model, cfg.params_id(cfg.grid_points(model, "full")[0]))
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
    for _ in range(3 if epochs else 1):  # the evaluation is reported at the first scale only
        t0 = time.perf_counter()
        evaluator.evaluate(net)
        _sync(dev)
        eval_times.append(time.perf_counter() - t0)
    return {
        "model": model,
        "params": cfg.params_id(cfg.grid_points(model, "full")[0]),
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


def _child_env() -> dict[str, str]:
    """The environment of a measuring subprocess: this package importable, whether installed or not."""
    source = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}


def run(
    models: list[str],
    scales: list[float],
    epochs: int,
    threads: int,
    device: str,
    out_dir: Path,
    seed: int = 0,
    shape: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Benchmark ``models`` at each interaction scale; writes ``bench.json`` and ``bench.md``.

    ``shape`` replaces the Baby shape (users, items, interactions, feature widths), for smoke tests.
    """
    import torch

    from ..errors import InputError
    from ..models.registry import CLOSED_FORM

    closed = [m for m in models if m in CLOSED_FORM]
    if closed:
        raise InputError(f"bench times training epochs; {', '.join(closed)} are fitted in closed form, without any")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mmk-bench-") as tmp:
        for scale in scales:
            folder = Path(tmp) / f"x{scale:g}"
            folder.mkdir()
            print(f"[bench] generating {scale:g}x Baby-shaped data", flush=True)
            write_data(folder, scale, seed, shape)
            for model in models:
                timed_epochs = epochs if scale == scales[0] else 0
                cmd = [
                    sys.executable,
                    "-m",
                    "mmknockout.bench.run",
                    "--child",
                    model,
                    str(folder),
                    str(timed_epochs),
                    str(threads),
                    device,
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
                if proc.returncode != 0:
                    row = {"model": model, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
                else:
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["scale"] = scale
                results.append(row)
                print(
                    f"[bench] {scale:g}x {model}: {row.get('est_epoch_s', float('nan')):.3f} s/epoch (estimate), "
                    f"eval {row.get('eval_s', float('nan')):.3f} s, peak {row.get('peak_rss_mb', 0):.0f} MB",
                    flush=True,
                )
    report = {
        "results": results,
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": threads,
            "device": device,
            "cpu": platform.processor() or platform.machine(),
        },
        "toolbox_epoch_s": TOOLBOX_EPOCH_SECONDS,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..io import write_json, write_text

    write_json(out_dir / "bench.json", report)
    write_text(out_dir / "bench.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The results table: measured and estimated epoch seconds, growth, evaluation, memory, targets."""
    rows = [r for r in report["results"] if "error" not in r]
    by = {(r["model"], r["scale"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    scales = sorted({r["scale"] for r in report["results"]})
    env = report["environment"]
    head = (
        ["model", f"epoch s ({scales[0]:g}x)"]
        + [f"est. epoch s ({s:g}x)" for s in scales]
        + ["epoch growth", "batch growth", "eval s", "eval / bound", "peak MB", "toolbox epoch s", "toolbox / ours"]
    )
    lines = [
        f"Baby-shaped synthetic data; torch {env['torch']}, {env['threads']} threads, device {env['device']}.",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for m in models:
        base = by.get((m, scales[0]))
        if base is None:
            error = next((r["error"] for r in report["results"] if r["model"] == m and "error" in r), "failed")
            lines.append(f"| {m} | failed: {error} |")
            continue
        est = [by[(m, s)]["est_epoch_s"] if (m, s) in by else float("nan") for s in scales]
        ratio = scales[-1] / scales[0]
        growth = (est[-1] / est[0]) / ratio if len(scales) > 1 else float("nan")
        last = by.get((m, scales[-1]), base)
        batch_growth = (last["batch_s"] / base["batch_s"]) / ratio if len(scales) > 1 else float("nan")
        measured = base["epoch_s"] if base.get("epoch_s") is not None else est[0]
        tool = TOOLBOX_EPOCH_SECONDS.get(m)
        cells = [
            m,
            f"{measured:.3f}",
            *(f"{e:.3f}" for e in est),
            f"{growth:.2f}",
            f"{batch_growth:.2f}",
            f"{base['eval_s']:.3f}",
            f"{base['eval_s'] / base['bound_s']:.2f}",
            f"{base['peak_rss_mb']:.0f}",
            f"{tool:g}" if tool else "-",
            f"{tool / measured:.1f}x" if tool else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
        "top-50 at the model's representation width. Targets: toolbox / ours >= 3 for every model and "
        ">= 5 for the median; eval / bound <= 1.3.",
    ]
    return "\n".join(lines) + "\n"


def _child(argv: list[str]) -> None:
    model, folder, epochs, threads, device = argv
    print(json.dumps(measure(model, Path(folder), int(epochs), int(threads), device)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
