"""The design of the VBPR case study (Fig. 4): which runs it needs and the conditions it adds.

* 4a: VBPR and BPR across ``reg_weight``; VBPR with all-zero features should coincide with BPR.
* 4b: VBPR with dual constant features of increasing value, across (large) ``reg_weight``.
* 4c: VBPR with dual noise N(mean, std^2) for several ``std``, across ``reg_weight``.

Each sweep point is an ordinary training run (same rule, same files); the sweep only adds the
conditions it needs (named ``sweep-const-<v>`` and ``sweep-noise-<std>``, values printed with
``:g``) and picks the runs. Values that print alike are refused (:func:`check_sweep_names`),
so a name always stands for one value. The table of results is :mod:`mmknockout.analysis.sweeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .grid import bounded, params_id

RESERVED_PREFIX = "sweep-"


@dataclass(frozen=True)
class SweepRun:
    """One run a sweep panel plots: a model, condition and reg_weight, drawn as ``series``."""

    panel: str
    model: str
    condition: str
    series: str
    reg_weight: float

    @property
    def params(self) -> str:
        return params_id({"reg_weight": self.reg_weight})


def constant_condition(value: float) -> str:
    return f"{RESERVED_PREFIX}const-{value:g}"


def noise_condition(std: float) -> str:
    return f"{RESERVED_PREFIX}noise-{std:g}"


def sweep_conditions(sweeps: Mapping[str, Any]) -> dict[str, dict]:
    """The extra knockout conditions a validated ``sweeps`` section needs, by name."""
    if not sweeps:
        return {}
    out = {constant_condition(v): _dual({"kind": "constant", "value": float(v)}) for v in sweeps["constant"]["values"]}
    out[constant_condition(0)] = _dual({"kind": "constant", "value": 0.0})
    mean = float(sweeps["noise"]["mean"])
    out.update(
        {noise_condition(s): _dual({"kind": "noise", "mean": mean, "std": float(s)}) for s in sweeps["noise"]["std"]}
    )
    return out


def _dual(rep: dict) -> dict:
    return {"text": dict(rep), "image": dict(rep)}


def sweep_runs(sweeps: Mapping[str, Any]) -> list[SweepRun]:
    """Every run of the three panels, in panel order."""
    if not sweeps:
        return []
    runs = []
    for reg in sweeps["reg_weight"]:
        runs += [
            SweepRun("4a", "VBPR", "baseline", "VBPR", reg),
            SweepRun("4a", "BPR", "baseline", "BPR", reg),
            SweepRun("4a", "VBPR", constant_condition(0), "VBPR, zero features", reg),
        ]
    for reg in sweeps["constant"]["reg_weight"]:
        runs += [
            SweepRun("4b", "VBPR", constant_condition(v), f"constant {v:g}", reg) for v in sweeps["constant"]["values"]
        ]
    for reg in sweeps["noise"]["reg_weight"]:
        runs += [SweepRun("4c", "VBPR", noise_condition(s), f"noise std {s:g}", reg) for s in sweeps["noise"]["std"]]
    return runs


def check_sweep_names(sweeps: Mapping[str, Any]) -> None:
    """Refuse sweep values that differ but give the same condition name.

    (reg_weight values need no check: params ids print floats exactly, and equal values are
    refused by the schema's uniqueItems.)
    """
    _refuse_alike("sweeps.constant.values", [0, *sweeps["constant"]["values"]], constant_condition)
    _refuse_alike("sweeps.noise.std", sweeps["noise"]["std"], noise_condition)


def _refuse_alike(field: str, values: Iterable[float], name_of: Callable[[float], str]) -> None:
    seen: dict[str, float] = {}
    for value in values:
        name = name_of(value)
        if name in seen and float(seen[name]) != float(value):
            raise InputError(
                bounded(
                    f"config field '{field}': values {seen[name]!r} and {value!r} both give the name "
                    f"'{name}'; give values that differ in their first 6 significant digits"
                )
            )
        seen.setdefault(name, value)
