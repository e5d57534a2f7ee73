"""Recommenders behind one interface (:class:`~mmknockout.models.base.Recommender`)."""
from .registry import FAMILIES, MODELS, get_model_class

__all__ = ["FAMILIES", "MODELS", "get_model_class"]
