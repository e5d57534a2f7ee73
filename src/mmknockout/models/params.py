"""Typed hyper-parameters: every model declares a frozen dataclass of what it reads.

A field is declared with :func:`hp`: its default (none means the yaml must give it), a one-line
meaning, and optional bounds (``ge``, ``gt``, ``le``, ``lt``) or allowed ``choices``.
:meth:`HyperParams.from_mapping` builds the dataclass from a config mapping and raises
:class:`~mmknockout.errors.InputError` naming the model and the key for an unknown or missing key,
a value of the wrong type or one outside its range. ``int`` values are accepted for ``float``
fields (and converted); lists are accepted for ``tuple`` fields.

The optimiser's settings are not a model's: :class:`OptimiserParams` holds them for
:func:`mmknockout.train.trainer.make_optimizer`, and a model's mapping may carry them alongside.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

from ..errors import InputError


def hp(
    default: Any = MISSING,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A documented hyper-parameter field (a :func:`dataclasses.field` with metadata)."""
    bounds = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    return dataclasses.field(default=default, metadata={"doc": doc, "bounds": bounds, "choices": choices})


_COMPARE = {
    "ge": (lambda v, b: v >= b, ">="),
    "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="),
    "lt": (lambda v, b: v < b, "<"),
}


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as type ``kind`` (int, float, bool, str or a tuple of those); ValueError otherwise."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (list, tuple)):
            raise ValueError("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"a list of {len(args)} values")
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    accepted = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[kind]
    if isinstance(value, accepted) and (kind is bool or not isinstance(value, bool)):
        return float(value) if kind is float else value
    raise ValueError(f"{'an' if kind is int else 'a'} {kind.__name__}")


def _check_range(value: Any, bounds: Mapping[str, float]) -> str | None:
    """The first violated bound as text (``'>= 0'``), or None; tuples are checked element-wise."""
    for v in value if isinstance(value, tuple) else (value,):
        for name, bound in bounds.items():
            ok, symbol = _COMPARE[name]
            if not ok(v, bound):
                return f"{symbol} {bound}"
    return None


@dataclass(frozen=True, kw_only=True)
class ParamSet:
    """A validated, immutable set of settings built by :meth:`from_mapping`."""

    @classmethod
    @functools.cache
    def types(cls) -> dict[str, Any]:
        """Field name -> resolved type annotation."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, model: str, params: Mapping[str, Any], ignore: frozenset[str] = frozenset()):
        """Validated instance from ``params``; keys in ``ignore`` are skipped."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in params if k not in fields and k not in ignore)
        if unknown:
            raise InputError(f"{model}: unknown hyper-parameter '{unknown[0]}' (known: {', '.join(sorted(fields))})")
        values = {}
        for name, f in fields.items():
            if name not in params:
                if f.default is MISSING:
                    raise InputError(f"{model}: missing hyper-parameter '{name}' (see config/models/{model}.yaml)")
                continue
            values[name] = cls._value(model, f, params[name])
        return cls(**values)

    @classmethod
    def _value(cls, model: str, f: dataclasses.Field, raw: Any) -> Any:
        kind = cls.types()[f.name]
        try:
            value = _convert(raw, kind)
        except ValueError as err:
            raise InputError(f"{model}: hyper-parameter '{f.name}' must be {err}, got {raw!r}") from None
        choices = f.metadata["choices"]
        if choices is not None and value not in choices:
            raise InputError(f"{model}: hyper-parameter '{f.name}' must be one of {list(choices)}, got {raw!r}")
        violated = _check_range(value, f.metadata["bounds"])
        if violated:
            raise InputError(f"{model}: hyper-parameter '{f.name}' must be {violated}, got {raw!r}")
        return value

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> its one-line meaning (for documentation and the CLI)."""
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


@dataclass(frozen=True, kw_only=True)
class HyperParams(ParamSet):
    """Base of every model's hyper-parameters; ``embedding_size`` is shared by all models."""

    embedding_size: int = hp(64, "width d of the ID embeddings", ge=1)


@dataclass(frozen=True, kw_only=True)
class OptimiserParams(ParamSet):
    """Adam and its exponential learning-rate schedule, shared by every model."""

    learning_rate: float = hp(0.001, "Adam step size", gt=0)
    weight_decay: float = hp(0.0, "Adam's L2 weight decay", ge=0)
    lr_scheduler: tuple[float, int] = hp(
        (1.0, 50), "(factor, step): the rate is scaled by factor ** (epoch / step)", gt=0
    )

    #: the keys an optimiser reads from a model's merged mapping
    KEYS: ClassVar[frozenset[str]] = frozenset({"learning_rate", "weight_decay", "lr_scheduler"})

    @classmethod
    def of(cls, model: str, params: Mapping[str, Any]) -> OptimiserParams:
        """The optimiser settings within a model's merged mapping (other keys are ignored)."""
        return cls.from_mapping(model, {k: v for k, v in params.items() if k in cls.KEYS})
