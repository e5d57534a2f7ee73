"""Grid-point selection: the rounded best metric, ties, diverged runs, validation or test."""

from __future__ import annotations

import pytest

from mmknockout.analysis.selection import select
from mmknockout.errors import InputError


def record(pid: str, valid: float | None, test: float | None = None, status: str = "ok") -> dict:
    metrics = {} if valid is None else {"NDCG@5": valid}
    return {"params_id": pid, "status": status, "valid": metrics, "test": {} if test is None else {"NDCG@5": test}}


def chosen(records: list[dict], selection: str = "valid") -> str:
    return select(records, "NDCG@5", selection)["params_id"]


def test_best_validation_metric_wins():
    records = [record("a", 0.10, 0.9), record("b", 0.30, 0.1), record("c", 0.20, 0.5)]
    assert chosen(records) == "b"


def test_ties_after_rounding_go_to_the_first_params_id_in_sorted_order():
    # 0.12344 and 0.12341 are equal at 4 decimals: the raw larger value does not win
    assert chosen([record("b", 0.12344), record("a", 0.12341)]) == "a"
    assert chosen([record("a", 0.12341), record("b", 0.12344)]) == "a"
    # a difference that survives rounding decides
    assert chosen([record("a", 0.12341), record("b", 0.12346)]) == "b"


def test_sorted_order_is_the_params_id_string_order():
    records = [record("reg_weight=0.1", 0.5), record("reg_weight=0.01", 0.5), record("reg_weight=1.0", 0.5)]
    assert chosen(records) == "reg_weight=0.01"


def test_diverged_runs_are_never_selected_over_ok_runs():
    records = [record("a", 0.9, 0.9, status="diverged"), record("b", 0.01, 0.01), record("c", 0.5, status="diverged")]
    best = select(records, "NDCG@5")
    assert best["params_id"] == "b" and best["status"] == "ok"
    assert best["selection"]["candidates"] == {"a": None, "b": 0.01, "c": None}


def test_all_diverged_picks_the_first_params_id_and_says_so():
    records = [record("b", 0.9, status="diverged"), record("a", None, status="diverged")]
    best = select(records, "NDCG@5")
    assert best["params_id"] == "a" and best["status"] == "diverged"
    assert best["selection"] == {"by": "valid NDCG@5", "candidates": {"b": None, "a": None}}


def test_selection_test_picks_by_the_test_metric():
    records = [record("a", 0.30, 0.10), record("b", 0.10, 0.30)]
    assert chosen(records, "valid") == "a"
    best = select(records, "NDCG@5", "test")
    assert best["params_id"] == "b" and best["selection"]["by"] == "test NDCG@5"
    assert best["selection"]["candidates"] == {"a": 0.1, "b": 0.3}


def test_the_chosen_record_is_a_copy():
    records = [record("a", 0.3)]
    best = select(records, "NDCG@5")
    assert best is not records[0] and "selection" not in records[0]
    assert {k: v for k, v in best.items() if k != "selection"} == records[0]


@pytest.mark.parametrize(("records", "selection"), [([], "valid"), ([record("a", 0.1)], "train")])
def test_bad_requests_are_input_errors(records, selection):
    with pytest.raises(InputError):
        select(records, "NDCG@5", selection)
