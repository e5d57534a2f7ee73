"""Torch device names from config: ``cpu``, ``auto`` (CUDA when present), ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA where none exists is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{name}' requested but no CUDA GPU is available here; use device: cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}'; use cpu, auto, cuda or cuda:N") from None
