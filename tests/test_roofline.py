"""The roofline: counted FLOPs and bytes of a batch against hand counts, peaks, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmknockout.bench import roofline
from mmknockout.cli import main
from mmknockout.models.graph import GraphOperator

SMALL = {"n_users": 300, "n_items": 120, "n_interactions": 3000, "text_dim": 16, "image_dim": 24}


def test_linear_batch_counts_forward_and_weight_gradient_flops():
    m, k, n = 32, 20, 12
    layer = torch.nn.Linear(k, n)
    x = torch.randn(m, k)  # no gradient: the backward computes the weight's gradient only
    cost = roofline.count_batch(lambda: layer(x).square().sum(), list(layer.parameters()))
    assert cost.flops == 2 * m * k * n + 2 * m * k * n
    assert cost.sparse_bytes == 0
    assert cost.optimiser_bytes == 7 * 4 * (k * n + n)
    assert all(p.grad is None for p in layer.parameters())  # counting leaves no gradient behind


def test_sparse_product_bytes_match_a_hand_count():
    dense = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    op = GraphOperator(dense.to_sparse())
    x = torch.randn(3, 5, requires_grad=True)
    cost = roofline.count_batch(lambda: op(x).sum(), [x])
    nnz, rows_out = 3, 2
    forward = nnz * 8 + nnz * 4 + nnz * 5 * 4 + rows_out * 5 * 4  # indices, weights, gathered rows, output
    backward = nnz * 8 + nnz * 4 + nnz * 5 * 4 + 3 * 5 * 4  # the transpose: 3 output rows
    assert cost.sparse_bytes == forward + backward
    assert cost.flops == 0 and cost.optimiser_bytes == 7 * 4 * 15


def test_floor_adds_compute_and_memory_time():
    cost = roofline.BatchCost(flops=4e9, sparse_bytes=10**9, optimiser_bytes=10**9)
    assert cost.floor_s(roofline.Peaks(flops=2e9, bandwidth=1e9)) == pytest.approx(2 + 2)


def test_peaks_are_measured_and_positive():
    peaks = roofline.measure_peaks(n=128, mb=4, repeats=2)
    assert peaks.flops > 1e6 and peaks.bandwidth > 1e6


def test_report_for_two_models_on_small_data(tmp_path: Path, capsys):
    report = roofline.run(["BPR", "VBPR"], threads=1, batches=2, shape=SMALL)
    rows = {r["model"]: r for r in report["rows"]}
    vbpr, bpr = rows["VBPR"], rows["BPR"]
    assert vbpr["flops"] > 0 and bpr["flops"] == 0  # BPR has no matrix product, only dot products
    assert bpr["optimiser_bytes"] == 7 * 4 * (SMALL["n_users"] + SMALL["n_items"]) * 64
    for r in rows.values():
        assert r["multiple"] == pytest.approx(r["batch_s"] / r["floor_batch_s"]) and r["multiple"] > 0
    assert "| VBPR |" in roofline.markdown(report)


def test_cli_writes_the_report(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(
        roofline, "run", lambda *a: {"peaks": {"flops": 1e9, "bandwidth": 1e9}, "threads": 1, "rows": []}
    )
    assert main(["roofline", "--models", "BPR", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "roofline.json").read_text())["threads"] == 1
    assert "GFLOP/s" in capsys.readouterr().out
