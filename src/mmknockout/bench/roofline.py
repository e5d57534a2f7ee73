"""``python -m mmknockout roofline``: each model's training batch against this machine's floor.

Per model, on Baby-shaped data (:func:`mmknockout.data.synthetic.baby_like`), one training batch
(loss, backward, Adam step) is counted:

* dense FLOPs, forward and backward, with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
  products; element-wise work is not counted, so the floor stays a lower bound);
* bytes of the sparse graph products (``embedding_bag``: indices, weights, the gathered rows and
  the output rows), counted by a dispatch mode;
* bytes the optimiser moves: fused Adam reads parameter, gradient and both moments and writes
  parameter and moments, 7 values per trained parameter.

The machine's peaks are measured in the same process with the same threads: float32 matrix
product GFLOP/s (2048^3) and memory bandwidth (``c = a + b`` over 256 MB arrays: 3 x 256 MB per
pass). A batch's floor is ``flops / peak + bytes / bandwidth`` (the phases run one after
another); the epoch floor is that times the number of batches, and the measured epoch is the
median batch time (after a warm-up batch) times the number of batches.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

BATCH_SIZE = 2048
_BAGS = {"_embedding_bag", "_embedding_bag_forward_only"}


@dataclass(frozen=True)
class Peaks:
    """Measured float32 matrix-product rate (FLOP/s) and memory bandwidth (bytes/s)."""

    flops: float
    bandwidth: float


def _best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure_peaks(n: int = 2048, mb: int = 256, repeats: int = 5) -> Peaks:
    """The best of ``repeats`` timings of an ``n``^3 matrix product and of ``c = a + b`` over ``mb`` MB arrays."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    flops = 2 * n**3 / _best_seconds(lambda: torch.mm(a, b, out=out), repeats)
    size = mb * 2**20 // 4
    x, y, z = torch.ones(size), torch.ones(size), torch.empty(size)
    bandwidth = 3 * size * 4 / _best_seconds(lambda: torch.add(x, y, out=z), repeats)
    return Peaks(flops, bandwidth)


class SparseBytes(TorchDispatchMode):
    """Counts the bytes each ``embedding_bag`` (a CSR matrix times dense rows) reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in _BAGS:
            weight, indices = args[0], args[1]
            weights = kwargs.get("per_sample_weights") if kwargs else None
            weights = args[6] if weights is None and len(args) > 6 else weights
            result = out[0]
            gathered = indices.numel() * weight.shape[1] * weight.element_size()
            extra = weights.numel() * weights.element_size() if weights is not None else 0
            self.bytes += (
                indices.numel() * indices.element_size() + extra + gathered + result.numel() * result.element_size()
            )
        return out


def optimiser_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes fused Adam moves in one step: read p, grad, m, v; write p, m, v (parameters with a gradient)."""
    return sum(7 * p.numel() * p.element_size() for p in params if p.grad is not None)


@dataclass(frozen=True)
class BatchCost:
    flops: int
    sparse_bytes: int
    optimiser_bytes: int

    def floor_s(self, peaks: Peaks) -> float:
        return self.flops / peaks.flops + (self.sparse_bytes + self.optimiser_bytes) / peaks.bandwidth


def count_batch(step: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> BatchCost:
    """FLOPs and bytes of ``step()`` (returns the loss) with its backward; the optimiser's bytes after."""
    from torch.utils.flop_counter import FlopCounterMode

    for p in params:
        p.grad = None
    sparse = SparseBytes()
    with FlopCounterMode(display=False) as flops, sparse:
        step().backward()
    cost = BatchCost(flops.get_total_flops(), sparse.bytes, optimiser_bytes(params))
    for p in params:
        p.grad = None
    return cost


def model_row(model: str, data, features, peaks: Peaks, batches: int = 5, device: str = "cpu") -> dict[str, Any]:
    """One model's counted batch, measured batch time and epoch floor multiple."""
    from .. import config as cfg
    from ..models.registry import get_model_class
    from ..train.sampler import NegativeSampler
    from ..train.trainer import make_optimizer, seed_everything

    cls = get_model_class(model)
    params = cfg.parse_params_id(model, cfg.params_id(cfg.grid_points(model, "full")[0]))
    seed_everything(999)
    net = cls(data, {m: features[m] for m in cls.modalities}, params).to(device)
    opt, _ = make_optimizer(net, params)
    sampler = NegativeSampler(data, seed=999)
    net.train()
    net.on_epoch_start(0)
    stream = iter(sampler.epoch(BATCH_SIZE, torch.device(device)))
    trained = [p for p in net.parameters() if p.requires_grad]
    users, pos, neg = next(stream)
    cost = count_batch(lambda: net.loss(users, pos, neg), trained)
    times = []
    for index, (users, pos, neg) in enumerate(stream):
        if index > batches:
            break
        t0 = time.perf_counter()
        loss = net.loss(users, pos, neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    n_batches = math.ceil(len(data.train_users) / BATCH_SIZE)
    batch_s = statistics.median(times[1:] or times)  # the first is a warm-up
    floor = cost.floor_s(peaks)
    return {
        "model": model,
        **asdict(cost),
        "batch_s": batch_s,
        "floor_batch_s": floor,
        "epoch_s": batch_s * n_batches,
        "floor_epoch_s": floor * n_batches,
        "multiple": batch_s / floor,
    }


def run(models: list[str], threads: int, batches: int, scale: float = 1.0, shape: dict | None = None) -> dict:
    """Peaks, then every model's row, on one Baby-shaped data set generated here."""
    from ..data.synthetic import baby_like

    torch.set_num_threads(threads)
    peaks = measure_peaks()
    data, raw = baby_like(scale, 0, shape)
    features = {m: torch.from_numpy(x) for m, x in raw.items()}
    rows = [model_row(m, data, features, peaks, batches) for m in models]
    return {"peaks": asdict(peaks), "threads": threads, "rows": rows}


def markdown(report: dict) -> str:
    peaks = report["peaks"]
    lines = [
        f"Peaks ({report['threads']} threads): matmul {peaks['flops'] / 1e9:.1f} GFLOP/s, "
        f"memory {peaks['bandwidth'] / 1e9:.1f} GB/s.",
        "",
        "| model | GFLOP/batch | sparse MB/batch | Adam MB/batch | floor ms/batch | ms/batch "
        "| epoch s | floor s | x floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {r['flops'] / 1e9:.2f} | {r['sparse_bytes'] / 2**20:.0f} | "
            f"{r['optimiser_bytes'] / 2**20:.0f} | {r['floor_batch_s'] * 1e3:.1f} | {r['batch_s'] * 1e3:.1f} | "
            f"{r['epoch_s']:.2f} | {r['floor_epoch_s']:.2f} | {r['multiple']:.1f} |"
        )
    return "\n".join(lines) + "\n"
