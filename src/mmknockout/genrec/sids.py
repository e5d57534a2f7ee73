"""Semantic IDs (workflow step ``semantic_ids``): the knockout condition applied to the item features
*before* quantisation, then one RQ-VAE on the text, the image or the fused embedding; writes the codes
and their statistics (unique-prefix rate per level, collisions, AMI of the first code vs categories).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..arrays import load_feature_matrix, npy_header
from ..data.preprocess import read_mapping
from ..data.sequential import item_categories
from ..device import resolve_device, set_threads
from ..errors import InputError
from ..io import write_json, write_npy
from ..knockout import Condition
from .rqvae import RQVAEConfig, train_rqvae
from .stats import code_stats

SID_KINDS = ("text", "image", "fused")


def fuse(text: np.ndarray, image: np.ndarray, how: str) -> np.ndarray:
    """MGR-EF's item embedding: the mean (one shared space, e.g. CLIP) or the concatenation of the
    L2-normalised text and image embeddings."""

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    if how == "mean":
        if text.shape[1] != image.shape[1]:
            raise InputError(
                f"fusion 'mean' needs text and image embeddings of one size (got {text.shape[1]} and "
                f"{image.shape[1]}); use a joint encoder such as CLIP or fusion 'concat'"
            )
        return (unit(text) + unit(image)) / 2
    return np.concatenate([unit(text), unit(image)], axis=1)


def knocked_features(
    text: str, image: str, n_items: int, condition: str, condition_spec: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Both modalities' features with the knockout condition applied (the study's seeded draws)."""
    cond = Condition.parse(condition, condition_spec)
    if cond.absent:
        raise InputError(f"condition '{condition}': semantic IDs need both modalities; 'absent' cannot be quantised")
    raw = {"text": load_feature_matrix(text, n_items, "text"), "image": load_feature_matrix(image, n_items, "image")}
    return cond.apply(raw)


def semantic_ids_step(
    *,
    text: str,
    image: str,
    codes: str,
    sid_stats: str,
    kind: str,
    condition: str,
    condition_spec: Mapping[str, Any],
    rqvae: Mapping[str, Any],
    fusion: str,
    seed: int,
    device: str,
    metadata: str | None = None,
    item_map: str | None = None,
    threads: int | None = None,
) -> None:
    """Workflow step: codes [n_items, levels] of one RQ-VAE on the knocked-out features and their record;
    with the metadata and item map the AMI of the first code against the item categories."""
    set_threads(threads)
    if kind not in SID_KINDS:
        raise InputError(f"semantic-ID kind '{kind}' unknown; use one of {list(SID_KINDS)}")
    n_items = npy_header(text, "text features")[0][0]
    feats = knocked_features(text, image, n_items, condition, condition_spec)
    x = fuse(feats["text"], feats["image"], fusion) if kind == "fused" else feats[kind]
    cfg = RQVAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in rqvae.items()})
    t0 = time.perf_counter()
    out, losses = train_rqvae(x, cfg, seed, resolve_device(device))
    categories = item_categories(metadata, read_mapping(item_map, "item")) if metadata and item_map else None
    record = {"kind": kind, "condition": condition, "seed": seed, **code_stats(out, categories)}
    record.update(rqvae=dict(rqvae), loss_first=losses[0], loss_last=losses[-1], seconds=time.perf_counter() - t0)
    write_npy(codes, out)
    write_json(sid_stats, record)
