"""Knockout conditions: replace one or both modalities' features in memory, deterministically.

A condition maps modality -> replacement. A replacement is a kind with options:

=========  ===========================================================================
kind       replacement (original shape [n_items, dim] always kept)
=========  ===========================================================================
noise      i.i.d. N(mean, std^2); defaults mean 1.0, std 0.1, seed 42 (the study's values)
constant   every entry = ``value``; the shorthands ``ones`` and ``zeros`` mean value 1 and 0
mean       every row = the column mean of the real features
shuffle    the real rows permuted (a different permutation per modality)
absent     structural: the modality is dropped, so the model runs with that branch removed
           (only models that declare it in ``optional_modalities``; never both modalities)
=========  ===========================================================================

Random draws follow the study's generator exactly: one legacy ``numpy.random.RandomState(seed)``
draws the text matrix first and the image matrix second, so a modality's replacement is the same
whether it is knocked out alone or together with the other one (an ``absent`` modality's real
features still take their draws). A one-slot feature set has no second matrix: its single
modality takes the generator's first draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

MODALITY_ORDER = ("text", "image")
KINDS = ("noise", "constant", "mean", "shuffle", "absent")
SHORTHANDS: dict[str, dict[str, Any]] = {
    "noise": {"kind": "noise"},
    "ones": {"kind": "constant", "value": 1.0},
    "zeros": {"kind": "constant", "value": 0.0},
    "mean": {"kind": "mean"},
    "shuffle": {"kind": "shuffle"},
    "absent": {"kind": "absent"},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "noise": {"mean": 1.0, "std": 0.1, "seed": 42},
    "constant": {"value": 1.0},
    "mean": {},
    "shuffle": {"seed": 42},
    "absent": {},
}


@dataclass(frozen=True)
class Replacement:
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any], where: str = "condition") -> Replacement:
        if isinstance(spec, str):
            if spec not in SHORTHANDS:
                raise InputError(
                    f"{where}: unknown knockout '{spec}'; use one of {sorted(SHORTHANDS)} or a mapping with 'kind'"
                )
            spec = SHORTHANDS[spec]
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise InputError(f"{where}: knockout kind must be one of {list(KINDS)}, got {kind!r}")
        unknown = set(spec) - set(DEFAULTS[kind])
        if unknown:
            raise InputError(
                f"{where}: unknown option(s) {sorted(unknown)} for kind '{kind}'; allowed: {sorted(DEFAULTS[kind])}"
            )
        return cls(kind, {**DEFAULTS[kind], **spec})


@dataclass(frozen=True)
class Condition:
    """A named knockout condition; ``replacements`` is empty for the baseline."""

    name: str
    replacements: Mapping[str, Replacement]

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any] | None) -> Condition:
        spec = spec or {}
        unknown = set(spec) - set(MODALITY_ORDER)
        if unknown:
            raise InputError(f"condition '{name}': unknown modality {sorted(unknown)}; use 'text' and/or 'image'")
        return cls(name, {m: Replacement.parse(s, f"condition '{name}', {m}") for m, s in spec.items()})

    @property
    def absent(self) -> tuple[str, ...]:
        """The modalities this condition drops (kind ``absent``), in MODALITY_ORDER."""
        return tuple(m for m in MODALITY_ORDER if m in self.replacements and self.replacements[m].kind == "absent")

    def apply(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return a new feature dict with the condition's modalities replaced or dropped (inputs untouched)."""
        out = {m: x for m, x in features.items() if m not in self.absent}
        for modality in MODALITY_ORDER:
            if modality in out and modality in self.replacements and features.get(modality) is not None:
                out[modality] = replace(modality, features, self.replacements[modality])
        return out


def replace(modality: str, features: Mapping[str, np.ndarray], rep: Replacement) -> np.ndarray:
    real = features[modality]
    if rep.kind == "constant":
        return np.full(real.shape, rep.options["value"], dtype=np.float32)
    if rep.kind == "mean":
        return np.broadcast_to(real.mean(axis=0, dtype=np.float64), real.shape).astype(np.float32)
    draws = _sequential_draws(features, rep, upto=modality)
    if rep.kind == "noise":
        return draws.astype(np.float32)
    return real[draws].astype(np.float32, copy=False)


def _sequential_draws(features: Mapping[str, np.ndarray], rep: Replacement, upto: str) -> np.ndarray:
    """Draw for each modality in MODALITY_ORDER from one RandomState until ``upto`` is reached."""
    rng = np.random.RandomState(rep.options["seed"])
    for modality in MODALITY_ORDER:
        x = features.get(modality)
        if x is None:
            continue
        if rep.kind == "noise":
            draw = rng.normal(rep.options["mean"], rep.options["std"], size=x.shape)
        else:
            draw = rng.permutation(x.shape[0])
        if modality == upto:
            return draw
    raise AssertionError(f"modality {upto} not in features")


def parse_conditions(spec: Mapping[str, Any]) -> dict[str, Condition]:
    return {name: Condition.parse(name, s) for name, s in spec.items()}
