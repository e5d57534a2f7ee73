"""Model registry: name -> class, so config and CLI select models by name."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # importing the base class would import torch, which selection and tables do not need
    from .base import Recommender

#: model name -> "module:Class"; modules are imported only when a model is used
MODELS: dict[str, str] = {
    "BPR": "bpr:BPR",
    "LightGCN": "lightgcn:LightGCN",
    "VBPR": "vbpr:VBPR",
    "BM3": "bm3:BM3",
    "GRCN": "grcn:GRCN",
    "DualGNN": "dualgnn:DualGNN",
    "SLMRec": "slmrec:SLMRec",
    "MMGCN": "mmgcn:MMGCN",
    "LGMRec": "lgmrec:LGMRec",
    "LATTICE": "lattice:LATTICE",
    "FREEDOM": "freedom:FREEDOM",
    "MGCN": "mgcn:MGCN",
    "DAMRS": "damrs:DAMRS",
    "SMORE": "smore:SMORE",
    "DRAGON": "dragon:DRAGON",
    "PGL": "pgl:PGL",
}

#: models that read no features (their runs need no feature files)
FEATURE_FREE: frozenset[str] = frozenset({"BPR", "LightGCN"})

#: auxiliary graphs a model needs, known without importing torch (checked against the classes in tests)
REQUIRES: dict[str, tuple[str, ...]] = {"DualGNN": ("user_graph",), "DRAGON": ("user_graph",), "DAMRS": ("item_graph",)}

#: the model families of the study (Fig. 1 grouping); BPR and LightGCN are the feature-free references
FAMILIES: dict[str, str] = {
    "BPR": "no features",
    "LightGCN": "no features",
    "VBPR": "simple fusion",
    "BM3": "simple fusion",
    "SLMRec": "simple fusion",
    "MMGCN": "user-item graph",
    "GRCN": "user-item graph",
    "DualGNN": "user-item graph",
    "LATTICE": "item-item graph",
    "FREEDOM": "item-item graph",
    "MGCN": "item-item graph",
    "SMORE": "item-item graph",
    "DAMRS": "hybrid",
    "DRAGON": "hybrid",
    "LGMRec": "hybrid",
    "PGL": "hybrid",
}


def available_models() -> list[str]:
    """Registered models whose module exists in this installation, in registry order."""
    from importlib.util import find_spec

    return [name for name, target in MODELS.items() if find_spec(f"{__package__}.{target.split(':')[0]}")]


def get_model_class(name: str) -> "type[Recommender]":
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)
