"""Modality knockout: a reproducible study of whether multimodal features help recommendation."""

__version__ = "0.1.0"
