"""Statistics across seeds and users: means with 95 % t-intervals and paired tests vs baseline.

* Across seeds: every metric is reported as the mean over seeds with the half-width of a 95 %
  Student-t interval (``t_{0.975, n-1} * sd / sqrt(n)``; NaN with one seed).
* Change vs baseline: from the means rounded to 4 decimals, like the study (``aggregate.py``).
  Its interval is the 95 % t-interval of the paired difference over seeds, ``d_s = k_s - b_s``
  (knockout and baseline of the same seed): ``mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n)``, shown
  in % of the mean baseline, so it is centred on the change of the means.
  ``interval_includes_zero`` says whether it contains 0 (the change is within the seed noise);
  this is exactly ``p_seeds >= 0.05``. Empty with fewer than two seeds.
* ``n_capped_baseline`` / ``n_capped_knockout``: seeds whose selected run stopped at the epoch cap
  (``stop_reason`` ``epoch_cap`` in metrics.json) instead of by early stopping.
* ``p_seeds``: paired t-test (``scipy.stats.ttest_rel``) of the per-seed baseline vs knockout
  values (seeds matched by value); NaN with fewer than two paired seeds.
* ``p_users``: Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided) on the per-user
  test metric of baseline vs knockout, users aligned by id. With one seed it is that seed's test;
  with several, each user's value is first averaged over the seeds (``p_users_by_seed`` lists the
  test of every seed on its own). All-zero differences give p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import paths
from ..errors import InputError

GROUP = ["dataset", "feature_set", "model", "condition"]
#: the numeric columns of the significance table (written with fixed formats, read back as numbers)
SIG_VALUES = [
    "mean_baseline",
    "ci95_baseline",
    "mean_knockout",
    "ci95_knockout",
    "change %",
    "ci95",
    "p_seeds",
    "p_users",
]
SIG_COLUMNS = [
    *GROUP,
    "metric",
    "n_seeds",
    *SIG_VALUES,
    "p_users_by_seed",
    "n_users",
    "interval_includes_zero",
    "n_capped_baseline",
    "n_capped_knockout",
]
EPOCH_CAP = "epoch_cap"


def ci95(values: Iterable[float]) -> float:
    """Half-width of the 95 % t-interval of the mean of the finite values (NaN for n < 2)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n < 2:
        return math.nan
    return float(sps.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


def paired_change_interval(baseline: Sequence[float], knockout: Sequence[float]) -> tuple[float, bool | None]:
    """(half-width in % of the mean baseline, whether it includes 0) of the 95 % t-interval of the
    paired differences ``knockout - baseline`` over the seeds where both are finite; (NaN, None)
    with fewer than two such seeds or a zero baseline mean."""
    b = np.asarray(baseline, dtype=float)
    k = np.asarray(knockout, dtype=float)
    ok = np.isfinite(b) & np.isfinite(k)
    if ok.sum() < 2 or b[ok].mean() == 0:
        return math.nan, None
    d = k[ok] - b[ok]
    half = ci95(d)
    return float(half / abs(b[ok].mean()) * 100), bool(abs(d.mean()) <= half)


def capped(records: Iterable[Mapping | None]) -> int:
    """How many of the run records stopped at the epoch cap."""
    return sum(1 for r in records if r is not None and r.get("stop_reason") == EPOCH_CAP)


def mean(values: Iterable[float]) -> float:
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return float(x.mean()) if len(x) else math.nan


def change_pct(baseline: float, knockout: float, decimals: int = 4) -> float:
    """(knockout - baseline) / baseline * 100 from values rounded to ``decimals``, 1 decimal; NaN if undefined."""
    if not (np.isfinite(baseline) and np.isfinite(knockout)):
        return math.nan
    b, k = round(baseline, decimals), round(knockout, decimals)
    if b == 0:
        return math.nan
    return round((k - b) / b * 100, 1)


def paired_seed_test(baseline: Sequence[float], knockout: Sequence[float]) -> float:
    """p-value of the paired t-test over seeds; NaN with fewer than 2 finite pairs or zero variance."""
    b = np.asarray(baseline, dtype=float)
    k = np.asarray(knockout, dtype=float)
    ok = np.isfinite(b) & np.isfinite(k)
    b, k = b[ok], k[ok]
    if len(b) < 2:
        return math.nan
    d = k - b
    if np.all(d == d[0]):
        # zero variance of the differences: the t statistic is 0/0 (no change) or +-inf
        return 1.0 if d[0] == 0 else 0.0
    return float(sps.ttest_rel(k, b).pvalue)


def align_users(
    users_a: np.ndarray, values_a: np.ndarray, users_b: np.ndarray, values_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The users present in both runs (sorted by id) and their two value vectors."""
    users_a, users_b = np.asarray(users_a), np.asarray(users_b)
    common, ia, ib = np.intersect1d(users_a, users_b, assume_unique=False, return_indices=True)
    return common, np.asarray(values_a, dtype=float)[ia], np.asarray(values_b, dtype=float)[ib]


def wilcoxon_p(baseline: np.ndarray, knockout: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired per-user values (1.0 if every difference is 0)."""
    b = np.asarray(baseline, dtype=float)
    k = np.asarray(knockout, dtype=float)
    ok = np.isfinite(b) & np.isfinite(k)
    b, k = b[ok], k[ok]
    if len(b) == 0:
        return math.nan
    if np.all(k - b == 0):
        return 1.0
    return float(sps.wilcoxon(k, b, zero_method="wilcox", alternative="two-sided").pvalue)


def per_user_file(record: Mapping) -> str:
    """The per-user test metrics file of a run record."""
    return paths.fill(
        paths.PER_USER,
        dataset=record["dataset"],
        feature_set=record["feature_set"],
        model=record["model"],
        condition=record["condition"],
        params=record["params_id"],
        seed=record["seed"],
    )


def read_per_user(path: str | Path) -> dict[str, np.ndarray] | None:
    """``users`` plus one array per metric; None for a run that evaluated no test user."""
    try:
        with np.load(path) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read per-user metrics {path}: {exc}") from None
    return data if len(data.get("users", ())) else None


def per_user_of(records: Sequence[Mapping], files: Iterable[str]) -> dict[tuple, dict[str, np.ndarray] | None]:
    """Per-user metrics of every ok run among ``records``, read from ``files`` (the declared inputs).

    A selected run whose file is not among ``files`` is an error, never a silent NaN p-value."""
    declared = {str(Path(f)) for f in files}
    out = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        path = str(Path(per_user_file(r)))
        if path not in declared:
            raise InputError(f"per-user metrics of a selected run are not an input of this step: {path}")
        out[tuple(r[k] for k in GROUP) + (int(r["seed"]),)] = read_per_user(path)
    return out


def significance_step(*, selected: Sequence[str], per_user: Sequence[str], table: str, metrics: Sequence[str]) -> None:
    """Workflow step: paired tests of every knockout against its baseline (seeds and users)."""
    from .selection import read_json

    records = [read_json(p) for p in selected]
    write_significance(significance(records, metrics, per_user_of(records, per_user)), table)


def significance(
    records: Sequence[Mapping], metrics: Sequence[str], per_user: Mapping[tuple, Mapping[str, np.ndarray] | None]
) -> pd.DataFrame:
    """One row per (dataset, feature set, model, knockout condition, metric): seed statistics and p-values.

    ``records`` are selected run records (metrics.json + selection); ``per_user`` maps (dataset,
    feature_set, model, condition, seed) of each ok run to its per-user arrays (:func:`per_user_of`).
    """
    by_key: dict[tuple, dict[int, Mapping]] = {}
    for r in records:
        by_key.setdefault(tuple(r[k] for k in GROUP), {})[int(r["seed"])] = r

    def users_of(r: Mapping) -> Mapping[str, np.ndarray] | None:
        key = tuple(r[k] for k in GROUP) + (int(r["seed"]),)
        return per_user.get(key) if r.get("status") == "ok" else None

    def value(r: Mapping | None, m: str) -> float:
        if r is None or r.get("status") != "ok":
            return math.nan
        v = r.get("test", {}).get(m)
        return round(float(v), 4) if v is not None else math.nan

    rows = []
    for key, runs in by_key.items():
        dataset, fs, model, cond = key
        if cond == "baseline":
            continue
        base_runs = by_key.get((dataset, fs, model, "baseline"))
        if not base_runs:
            continue
        seeds = sorted(set(runs) & set(base_runs))
        if not seeds:
            continue
        pu_base = {s: users_of(base_runs[s]) for s in seeds}
        pu_knock = {s: users_of(runs[s]) for s in seeds}
        for m in metrics:
            b = [value(base_runs[s], m) for s in seeds]
            k = [value(runs[s], m) for s in seeds]
            mb, mk = mean(b), mean(k)
            change_ci, includes_zero = paired_change_interval(b, k)
            by_seed, pairs = [], []
            for s in seeds:
                pb, pk = pu_base[s], pu_knock[s]
                if pb is None or pk is None or m not in pb or m not in pk:
                    by_seed.append((s, math.nan))
                    continue
                users, vb, vk = align_users(pb["users"], pb[m], pk["users"], pk[m])
                by_seed.append((s, wilcoxon_p(vb, vk)))
                pairs.append((users, vb, vk))
            p_users, n_users = _pooled_users(pairs) if len(pairs) == len(seeds) else (math.nan, 0)
            rows.append(
                {
                    "dataset": dataset,
                    "feature_set": fs,
                    "model": model,
                    "condition": cond,
                    "metric": m,
                    "n_seeds": len(seeds),
                    "mean_baseline": mb,
                    "ci95_baseline": ci95(b),
                    "mean_knockout": mk,
                    "ci95_knockout": ci95(k),
                    "change %": change_pct(mb, mk),
                    "ci95": change_ci,
                    "p_seeds": paired_seed_test(b, k),
                    "p_users": p_users,
                    "p_users_by_seed": ";".join(f"{s}:{format_p(p, prefix=False)}" for s, p in by_seed),
                    "n_users": n_users,
                    "interval_includes_zero": includes_zero,
                    "n_capped_baseline": capped(base_runs[s] for s in seeds),
                    "n_capped_knockout": capped(runs[s] for s in seeds),
                }
            )
    df = pd.DataFrame(rows, columns=SIG_COLUMNS)
    return sort_frame(df)


def _pooled_users(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, int]:
    """Wilcoxon on each user's seed-averaged values (users present in every seed)."""
    if not pairs:
        return math.nan, 0
    common = pairs[0][0]
    for users, _, _ in pairs[1:]:
        common = np.intersect1d(common, users)
    if len(common) == 0:
        return math.nan, 0
    vb = np.mean([vb[np.searchsorted(u, common)] for u, vb, _ in pairs], axis=0)
    vk = np.mean([vk[np.searchsorted(u, common)] for u, _, vk in pairs], axis=0)
    return wilcoxon_p(vb, vk), int(len(common))


def sort_frame(df: pd.DataFrame, condition_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows by dataset, feature set, model (registry order), condition (given order, then name), metric."""
    from ..models.registry import MODELS

    order_m = {m: i for i, m in enumerate(MODELS)}
    order_c = {c: i for i, c in enumerate(condition_order or ())}
    keys = pd.DataFrame(
        {
            "d": df["dataset"],
            "f": df["feature_set"],
            "m": df["model"].map(lambda m: order_m.get(m, len(order_m))),
            "mn": df["model"],
            "c": df["condition"].map(lambda c: order_c.get(c, len(order_c))),
            "cn": df["condition"],
        }
    )
    if "metric" in df:
        keys["x"] = df["metric"]
    idx = keys.sort_values(list(keys.columns), kind="stable").index
    return df.loc[idx].reset_index(drop=True)


def format_p(p: float, prefix: bool = True) -> str:
    """'p<0.001', 'p=0.012', 'p=0.35' or 'n/a'."""
    if p is None or not np.isfinite(p):
        return "n/a"
    pre = "p" if prefix else ""
    if p < 0.001:
        return f"{pre}<0.001"
    if p < 0.01:
        return f"{pre}={p:.3f}" if prefix else f"{p:.3f}"
    return f"{pre}={p:.2f}" if prefix else f"{p:.2f}"


def write_significance(df: pd.DataFrame, path: str | Path) -> None:
    """significance.csv with fixed formats: metric means 4 decimals, change 1, its ci95 2, p-values 4 significant."""
    from ..io import atomic_path

    out = df.copy()
    for c in ("mean_baseline", "ci95_baseline", "mean_knockout", "ci95_knockout"):
        out[c] = [_fmt(x, "{:.4f}") for x in out[c]]
    out["change %"] = [_fmt(0.0 if x == 0 else x, "{:+.1f}") for x in out["change %"]]
    out["ci95"] = [_fmt(x, "{:.2f}") for x in out["ci95"]]
    for c in ("p_seeds", "p_users"):
        out[c] = [_fmt(x, "{:.4g}") for x in out[c]]
    out["interval_includes_zero"] = [_yes_no(x) for x in out["interval_includes_zero"]]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, lineterminator="\n")


def read_significance(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=True, na_values=["n/a"])
    for c in SIG_VALUES:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["p_users_by_seed"] = df["p_users_by_seed"].fillna("").astype(str)
    df["interval_includes_zero"] = [{"yes": True, "no": False}.get(x) for x in df["interval_includes_zero"]]
    for c in ("n_capped_baseline", "n_capped_knockout"):
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0).astype(int)
    return df


def _yes_no(x: bool | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else ("yes" if x else "no")


def _fmt(x: float, spec: str) -> str:
    return "" if x is None or not np.isfinite(x) else spec.format(x)
