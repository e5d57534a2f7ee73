"""Smoke test of the benchmark command on a tiny shape (the real benchmark is not part of the suite)."""

import json

from mmknockout.bench.run import run

TINY = {"n_users": 120, "n_items": 60, "n_interactions": 1200, "text_dim": 8, "image_dim": 16}


def test_bench_writes_a_row_per_model_and_scale(tmp_path):
    report = run(["BPR", "FREEDOM"], [1, 2], epochs=1, threads=1, device="cpu", out_dir=tmp_path, shape=TINY)
    rows = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert [(r["model"], r["scale"]) for r in rows] == [("BPR", 1), ("FREEDOM", 1), ("BPR", 2), ("FREEDOM", 2)]
    for row in rows:
        assert "error" not in row, row
        assert row["est_epoch_s"] > 0 and row["eval_s"] > 0 and row["bound_s"] > 0 and row["peak_rss_mb"] > 50
        assert (row["epoch_s"] is None) == (row["scale"] == 2)  # whole epochs only at the first scale
    assert rows[2]["train"] > rows[0]["train"]  # 2x the interactions
    table = (tmp_path / "bench.md").read_text()
    assert "| BPR |" in table and "| FREEDOM |" in table and "MMRec" not in table  # ours and the bound only
    assert report["environment"]["threads"] == 1
