"""Model registry: name -> class, so config and CLI select models by name."""
from __future__ import annotations

import importlib

from ..errors import InputError
from .base import Recommender

#: model name -> "module:Class"; modules are imported only when a model is used
MODELS: dict[str, str] = {
    "BPR": "bpr:BPR",
    "LightGCN": "lightgcn:LightGCN",
    "VBPR": "vbpr:VBPR",
    "FREEDOM": "freedom:FREEDOM",
}

#: the four model families of the study (Fig. 1 grouping)
FAMILIES: dict[str, str] = {
    "BPR": "collaborative filtering",
    "LightGCN": "collaborative filtering",
    "VBPR": "simple fusion",
    "FREEDOM": "item-item graph",
}


def get_model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)
