"""The recommenders of the study; see :mod:`.registry` (imported on first use of these names)."""

from typing import Any

__all__ = ["FAMILIES", "MODELS", "get_model_class"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
