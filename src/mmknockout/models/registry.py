"""Model registry: name -> class, so config and CLI select models by name.

A model is a :class:`~.base.Recommender` subclass with a non-empty ``family``, defined in a
module of this package; the package is scanned once on first use. Everything else here is read
from the classes: a model's ``modalities`` (none: feature-free), its ``requires`` (auxiliary
graphs), its ``optional_modalities`` (those it can run without, checked by
:func:`check_modalities`) and its ``Params`` (hyper-parameters, checked by :func:`validate_params`).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from .base import Recommender

#: the study's presentation order; a model not listed here follows, by name
STUDY_ORDER = (
    "BPR",
    "LightGCN",
    "VBPR",
    "BM3",
    "GRCN",
    "DualGNN",
    "SLMRec",
    "MMGCN",
    "LGMRec",
    "LATTICE",
    "FREEDOM",
    "MGCN",
    "DAMRS",
    "SMORE",
    "DRAGON",
    "PGL",
)
#: modules of this package that define no model
_INFRASTRUCTURE = frozenset({"base", "blocks", "graph", "losses", "ops", "params", "registry"})


@functools.cache
def _classes() -> dict[str, type[Recommender]]:
    """Every registered model class by name, in registry order."""
    from .base import Recommender

    found: dict[str, type[Recommender]] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name in _INFRASTRUCTURE or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Recommender)
                and value.__module__ == module.__name__
                and "family" in vars(value)
            ):
                found[value.__name__] = value
    rank = {name: i for i, name in enumerate(STUDY_ORDER)}
    return {name: found[name] for name in sorted(found, key=lambda n: (rank.get(n, len(rank)), n))}


def __getattr__(name: str) -> Any:
    """``MODELS``, ``FAMILIES``, ``FEATURE_FREE``, ``REQUIRES``, ``OPTIONAL_MODALITIES`` and
    ``CLOSED_FORM`` (the models fitted once, without epochs), computed from the classes."""
    if name == "MODELS":
        return tuple(_classes())
    if name == "FAMILIES":
        return {n: cls.family for n, cls in _classes().items()}
    if name == "FEATURE_FREE":
        return frozenset(n for n, cls in _classes().items() if not cls.modalities)
    if name == "REQUIRES":
        return {n: tuple(cls.requires) for n, cls in _classes().items() if cls.requires}
    if name == "CLOSED_FORM":
        return frozenset(n for n, cls in _classes().items() if cls.closed_form)
    if name == "OPTIONAL_MODALITIES":
        return {n: tuple(cls.optional_modalities) for n, cls in _classes().items() if cls.optional_modalities}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available_models() -> list[str]:
    """Registered models, in registry order."""
    return list(_classes())


def get_model_class(name: str) -> type[Recommender]:
    classes = _classes()
    if name not in classes:
        raise InputError(f"unknown model '{name}'; known models: {', '.join(sorted(classes))}")
    return classes[name]


def check_modalities(model: str, present: Iterable[str], where: str) -> None:
    """Refuse a model that cannot run on the modalities ``present`` (it reads another one and does not
    list it in ``optional_modalities``, or none of its modalities is left); ``where`` names the input."""
    from .base import modality_problem

    problem = modality_problem(get_model_class(model), present)
    if problem:
        raise InputError(f"{where}: {model} {problem}")


def validate_params(model: str, params: Mapping[str, Any]) -> None:
    """Check one grid point (fixed values merged with the grid's) of ``model``.

    Raises :class:`~mmknockout.errors.InputError` naming the model and the key for an unknown or
    missing key, a wrong type or an out-of-range value; optimiser keys are checked too.
    """
    from .params import OptimiserParams

    get_model_class(model).Params.from_mapping(model, params, ignore=OptimiserParams.KEYS)
    OptimiserParams.of(model, params)
