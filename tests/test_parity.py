"""The parity summary: seed means, difference, pooled standard deviation and the one-sd verdict."""

import math

import numpy as np

from mmknockout.bench.parity import markdown, pooled_sd, read_rows, seeds_of, summarise


def _rows(model, side, recalls, ndcgs):
    return [
        {"model": model, "side": side, "seed": 999 + k, "epochs_run": 10 + k, "test": {"Recall@20": r, "NDCG@20": n}}
        for k, (r, n) in enumerate(zip(recalls, ndcgs, strict=True))
    ]


def test_summary_against_numpy():
    ours, tool = [0.10, 0.12, 0.11], [0.09, 0.13, 0.08]
    rows = _rows("BPR", "ours", ours, [0.05, 0.06, 0.07]) + _rows("BPR", "mmrec", tool, [0.02, 0.021, 0.019])
    rows.append({"model": "BPR", "side": "mmrec", "seed": 5, "error": "crashed"})  # ignored
    recall, ndcg = summarise(rows)
    sd = np.sqrt((np.var(ours, ddof=1) + np.var(tool, ddof=1)) / 2)
    assert recall["metric"] == "Recall@20" and recall["seeds"] == 3
    assert math.isclose(recall["diff"], np.mean(ours) - np.mean(tool))
    assert math.isclose(recall["sd"], sd) and math.isclose(recall["sd_ours"], np.std(ours, ddof=1))
    assert recall["within_1sd"] is True  # diff 0.01, sd ~0.02
    assert ndcg["within_1sd"] is False  # diff 0.04, sd ~0.007
    assert recall["epochs_ours"] == 11
    table = markdown([recall, ndcg], 50, 20, "Recall@20")
    assert "| BPR | NDCG@20 | 0.0600 | 0.0200 | +0.0400 | +200% |" in table and "**no**" in table


def test_one_seed_has_no_verdict_and_a_missing_side_no_row():
    rows = (
        _rows("VBPR", "ours", [0.1], [0.1]) + _rows("VBPR", "mmrec", [0.2], [0.1]) + _rows("BM3", "ours", [0.1], [0.1])
    )
    summary = summarise(rows)
    assert [s["model"] for s in summary] == ["VBPR", "VBPR"]
    assert math.isnan(pooled_sd([0.1], [0.2])) and summary[0]["within_1sd"] is None
    assert "| VBPR | Recall@20 |" in markdown(summary, 5, 20, "Recall@20")


def test_rows_survive_a_torn_last_line(tmp_path):
    path = tmp_path / "parity.jsonl"
    path.write_text('{"model": "BPR", "side": "ours", "seed": 999}\n{"model": "BPR", "si')
    assert read_rows(path) == [{"model": "BPR", "side": "ours", "seed": 999}]
    assert read_rows(tmp_path / "absent.jsonl") == [] and seeds_of(3) == [999, 1000, 1001]
