"""Image encoders on downloaded product images: ViT-B/16 ([CLS], 768-d) and ResNet-50 (pooled, 2048-d).

Both load through Hugging Face ``transformers`` by name (``google/vit-base-patch16-224-in21k``,
``microsoft/resnet-50``) or from a local directory, so no torchvision is needed. The ViT variant
follows the study's script (PROTOCOL sec 1.6): RGB image -> the checkpoint's image processor ->
``last_hidden_state[:, 0]`` (the [CLS] token before the pooler), no projection, no normalisation.
ResNet-50 uses the global-average-pooled output of the last stage. Items whose image is missing or
unreadable get the mean of the valid vectors and are listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

KINDS = {"vit": "google/vit-base-patch16-224-in21k", "resnet": "microsoft/resnet-50"}


def load_encoder(kind: str, model: str | None = None, device: str = "cpu"):
    """(image processor, model) in eval mode on ``device``."""
    from transformers import AutoImageProcessor, AutoModel

    if kind not in KINDS:
        raise InputError(f"image encoder kind must be one of {sorted(KINDS)}, got '{kind}'")
    name = model or KINDS[kind]
    processor = AutoImageProcessor.from_pretrained(name)
    net = AutoModel.from_pretrained(name).to(device).eval()
    return processor, net


def _pooled(kind: str, outputs) -> torch.Tensor:
    if kind == "vit":
        return outputs.last_hidden_state[:, 0]
    return outputs.pooler_output.flatten(1)


def _open_rgb(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


@torch.no_grad()
def encode_images(
    image_paths: Sequence[Path | None],
    kind: str,
    model: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    show_progress: bool = True,
) -> tuple[np.ndarray, list[int]]:
    """Encode one image per item (None = no image); returns (features float32, missing item rows)."""
    from tqdm import tqdm

    processor, net = load_encoder(kind, model, device)
    images = [(_open_rgb(Path(p)) if p is not None and Path(p).exists() else None) for p in image_paths]
    valid = [i for i, im in enumerate(images) if im is not None]
    if not valid:
        raise InputError("no readable image for any item; check the image download log")
    vectors: list[torch.Tensor] = []
    for start in tqdm(range(0, len(valid), batch_size), disable=not show_progress, desc=f"{kind} images"):
        batch = [images[i] for i in valid[start : start + batch_size]]
        inputs = processor(images=batch, return_tensors="pt").to(device)
        vectors.append(_pooled(kind, net(**inputs)).float().cpu())
    encoded = torch.cat(vectors).numpy()
    out = np.empty((len(images), encoded.shape[1]), dtype=np.float32)
    out[:] = encoded.mean(axis=0)
    out[valid] = encoded
    missing = sorted(set(range(len(images))) - set(valid))
    return out, missing


def vision_features(
    *,
    index: str,
    features: str,
    missing: str,
    kind: str,
    model: str | None,
    batch_size: int,
    device: str,
    threads: int | None = None,
) -> None:
    """Workflow step: encode the downloaded images (index from ``download_images``), mean fill for
    items without a readable image, which are listed in ``missing``."""
    import pandas as pd

    from ..device import resolve_device, set_threads
    from ..io import write_npy
    from .image import write_missing

    set_threads(threads)
    table = pd.read_csv(index, sep="\t").sort_values("itemID")
    image_paths = [p if isinstance(p, str) else None for p in table["path"]]
    matrix, missing_rows = encode_images(
        image_paths, kind, model=model, batch_size=batch_size, device=str(resolve_device(device))
    )
    write_npy(features, matrix)
    write_missing(missing, table["itemID"].to_numpy()[missing_rows].tolist())
