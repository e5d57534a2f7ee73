"""Seed statistics and paired tests vs scipy directly."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from mmknockout.analysis import stats
from mmknockout.errors import InputError


def test_ci95_is_the_t_interval_half_width():
    x = [0.031, 0.029, 0.034, 0.030]
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert stats.ci95(x) == pytest.approx((hi - lo) / 2)
    assert math.isnan(stats.ci95([0.03]))
    assert math.isnan(stats.ci95([float("nan"), 0.03]))


def test_change_pct_uses_rounded_values():
    assert stats.change_pct(0.02114, 0.02156) == pytest.approx(round((0.0216 - 0.0211) / 0.0211 * 100, 1))
    assert math.isnan(stats.change_pct(0.0, 0.01))
    assert math.isnan(stats.change_pct(0.02, float("nan")))


def test_paired_seed_test_matches_scipy():
    b = [0.030, 0.032, 0.031]
    k = [0.021, 0.025, 0.020]
    assert stats.paired_seed_test(b, k) == pytest.approx(sps.ttest_rel(k, b).pvalue)
    assert math.isnan(stats.paired_seed_test([0.03], [0.02]))
    assert stats.paired_seed_test([0.03, 0.04], [0.03, 0.04]) == 1.0


def test_wilcoxon_aligns_users_by_id():
    rng = np.random.default_rng(1)
    users = np.arange(200)
    base = rng.random(200)
    knock = base - 0.05 + 0.1 * rng.random(200)
    perm = rng.permutation(200)
    common, vb, vk = stats.align_users(users, base, users[perm][:150], knock[perm][:150])
    assert len(common) == 150 and np.all(np.diff(common) > 0)
    assert np.allclose(vb, base[common]) and np.allclose(vk, knock[common])
    assert stats.wilcoxon_p(vb, vk) == pytest.approx(sps.wilcoxon(knock[common], base[common]).pvalue)
    assert stats.wilcoxon_p(base, base) == 1.0


def _record(model, cond, seed, ndcg, status="ok"):
    return {
        "dataset": "baby",
        "feature_set": "default",
        "model": model,
        "condition": cond,
        "seed": seed,
        "params_id": "reg_weight=0.1",
        "status": status,
        "test": {"NDCG@10": ndcg, "Recall@10": ndcg * 2} if status == "ok" else {},
    }


def _per_user(seed, shift, n=300):
    rng = np.random.default_rng(seed)
    users = np.arange(n)
    v = rng.random(n) * 0.1
    return {"users": users, "NDCG@10": v + shift * rng.random(n), "Recall@10": v}


def test_significance_one_seed():
    records = [_record("VBPR", "baseline", 999, 0.0300), _record("VBPR", "image-noise", 999, 0.0210)]
    pu = {
        ("baby", "default", "VBPR", "baseline", 999): _per_user(0, 0.0),
        ("baby", "default", "VBPR", "image-noise", 999): _per_user(0, -0.02),
    }
    df = stats.significance(records, ["NDCG@10"], per_user=pu)
    assert list(df.columns) == stats.SIG_COLUMNS
    row = df.iloc[0]
    assert row["condition"] == "image-noise" and row["n_seeds"] == 1
    assert row["change %"] == pytest.approx(-30.0)
    assert math.isnan(row["p_seeds"]) and math.isnan(row["ci95"])
    b, k = pu[("baby", "default", "VBPR", "baseline", 999)], pu[("baby", "default", "VBPR", "image-noise", 999)]
    assert row["p_users"] == pytest.approx(sps.wilcoxon(k["NDCG@10"], b["NDCG@10"]).pvalue)
    assert row["n_users"] == 300


def test_significance_several_seeds():
    base = {1: 0.0301, 2: 0.0310, 3: 0.0296}
    knock = {1: 0.0222, 2: 0.0240, 3: 0.0205}
    records = [_record("BM3", "baseline", s, v) for s, v in base.items()]
    records += [_record("BM3", "dual-noise", s, v) for s, v in knock.items()]
    pu = {}
    for s in base:
        pu[("baby", "default", "BM3", "baseline", s)] = _per_user(s, 0.0)
        pu[("baby", "default", "BM3", "dual-noise", s)] = _per_user(s, -0.03)
    row = stats.significance(records, ["NDCG@10"], per_user=pu).iloc[0]
    b, k = list(base.values()), list(knock.values())
    assert row["n_seeds"] == 3
    assert row["mean_baseline"] == pytest.approx(np.mean(b))
    assert row["ci95_knockout"] == pytest.approx(stats.ci95(k))
    assert row["p_seeds"] == pytest.approx(sps.ttest_rel(k, b).pvalue)
    d = np.subtract(k, b)  # the t-interval of the paired difference, in % of the mean baseline
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert row["ci95"] == pytest.approx(half / np.mean(b) * 100)
    assert abs(d.mean()) > half and row["p_seeds"] < 0.05  # a sure drop: the interval excludes 0
    assert row["interval_includes_zero"] is not None and not row["interval_includes_zero"]
    vb = np.mean([pu[("baby", "default", "BM3", "baseline", s)]["NDCG@10"] for s in base], axis=0)
    vk = np.mean([pu[("baby", "default", "BM3", "dual-noise", s)]["NDCG@10"] for s in base], axis=0)
    assert row["p_users"] == pytest.approx(sps.wilcoxon(vk, vb).pvalue)
    assert row["p_users_by_seed"].count(":") == 3


def test_diverged_knockout_has_no_p(tmp_path):
    records = [_record("LATTICE", "baseline", 999, 0.03), _record("LATTICE", "dual-zeros", 999, None, "diverged")]
    df = stats.significance(records, ["NDCG@10"], per_user={})
    assert math.isnan(df.iloc[0]["mean_knockout"]) and math.isnan(df.iloc[0]["p_users"])


def _write_per_user(tmp_path, records, shifts):
    files = []
    for r, shift in zip(records, shifts, strict=True):
        path = tmp_path / stats.per_user_file(r)
        path.parent.mkdir(parents=True)
        np.savez(path, **_per_user(5, shift))
        files.append(str(path))
    return files


def test_per_user_files_are_read_from_the_declared_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [_record("VBPR", "baseline", 999, 0.03), _record("VBPR", "text-noise", 999, 0.02)]
    _write_per_user(tmp_path, records, (0.0, -0.02))
    files = [stats.per_user_file(r) for r in records]
    row = stats.significance(records, ["NDCG@10"], stats.per_user_of(records, files)).iloc[0]
    assert 0 <= row["p_users"] < 0.05
    out = tmp_path / "sig.csv"
    stats.write_significance(
        stats.significance(records, ["NDCG@10", "Recall@10"], stats.per_user_of(records, files)), out
    )
    first = out.read_bytes()
    stats.write_significance(
        stats.significance(records, ["NDCG@10", "Recall@10"], stats.per_user_of(records, files)), out
    )
    assert out.read_bytes() == first
    back = stats.read_significance(out)
    assert back.loc[0, "change %"] == pytest.approx(-33.3)


def test_undeclared_or_missing_per_user_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [_record("VBPR", "baseline", 999, 0.03), _record("VBPR", "text-noise", 999, 0.02)]
    _write_per_user(tmp_path, records[:1], (0.0,))
    with pytest.raises(InputError, match="not an input of this step"):
        stats.per_user_of(records, [stats.per_user_file(records[0])])
    with pytest.raises(InputError, match="cannot read per-user metrics"):
        stats.per_user_of(records, [stats.per_user_file(r) for r in records])


def test_format_p():
    assert stats.format_p(0.0004) == "p<0.001"
    assert stats.format_p(0.0123) == "p=0.01"
    assert stats.format_p(0.0052) == "p=0.005"
    assert stats.format_p(float("nan")) == "n/a"
