"""Torch runtime settings of a job: the device from a config name (``cpu``, ``auto`` = CUDA when
present, ``cuda`` or ``cuda:N``) and the number of CPU threads."""

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


def set_threads(threads: int | None) -> None:
    """Torch CPU threads of a job, when given (oversubscribed OpenMP threads slow small jobs tenfold)."""
    if threads:
        torch.set_num_threads(threads)
