"""Vision-language item encoders: the item record, the encoder interface and the workflow step.

An encoder is built from a spec mapping (one ``encoders`` entry of the config) by the factory that
:data:`KINDS` names for ``spec["kind"]``; it turns a batch of :class:`Item` records into one float32
row per item. :func:`encode_step` runs it over every item of a dataset with the resumable, chunked
extraction of :mod:`mmknockout.features.extract` and writes the feature matrix plus a JSON sidecar.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "clip": "mmknockout.features.clip:ClipEncoder",
    "vlm2vec": "mmknockout.features.vlm2vec:Vlm2VecEncoder",
    "lvlm": "mmknockout.features.lvlm:LvlmEncoder",
    "vlm_caption": "mmknockout.features.caption:CaptionEncoder",
}
"""Encoder kind -> ``"module:factory"``; ``factory(spec: Mapping, device: str) -> ItemEncoder``."""

INDEX_COLUMNS = ("itemID", "asin", "path")


@dataclass(frozen=True)
class Item:
    """What an encoder may read about one item.

    ``title`` and ``category`` (the leaf, last element of the first category path) are ``""`` when
    missing; ``text`` is the study's item text (:func:`mmknockout.features.text.item_text`: title,
    brand, categories, description); ``image`` is a readable local image file or None.
    """

    item_id: int
    title: str
    category: str
    text: str
    image: Path | None


class ItemEncoder(Protocol):
    """An item encoder built by a :data:`KINDS` factory.

    ``needs_images``: True if :meth:`encode` reads :attr:`Item.image`; then items without a
    readable image are not passed to it and their rows are filled with the mean of the others.
    """

    needs_images: bool

    def encode(self, items: Sequence[Item]) -> np.ndarray:
        """A finite float32 ``[len(items), dim]`` matrix, row i for ``items[i]``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts for the sidecar: model, revision, dtype, prompt(s), pooling, truncation, ..."""
        ...


def build_encoder(spec: Mapping[str, Any], device: str) -> ItemEncoder:
    """The encoder ``KINDS[spec["kind"]]`` makes from ``spec`` on ``device``."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise InputError(f"encoder kind {kind!r} is not one of {sorted(KINDS)}")
    module, factory = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), factory)(spec, device)


def _field(value: Any) -> str:
    """A metadata field as a string, ``""`` for missing (None, NaN, empty)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def leaf_category(categories: Any) -> str:
    """The last element of the first category path (``categories[0][-1]``), ``""`` if there is none."""
    if isinstance(categories, (list, tuple)) and categories and isinstance(categories[0], (list, tuple)):
        path = [c for c in categories[0] if isinstance(c, str) and c.strip()]
        return path[-1].strip() if path else ""
    return ""


def read_images_index(path: str | os.PathLike, item_map: pd.DataFrame) -> dict[int, Path]:
    """Item id -> image path from the ``itemID, asin, path`` index of ``data.images.download_step``.

    Rows with an empty path, or a path that is not a readable regular file, are left out (logged);
    relative paths are taken from the working directory (the workflow root, as the download step
    writes them). The index must list item ids of the mapping with the mapping's ASINs.
    """
    from ..io import read_error, require_file

    path = require_file(path, "image index")
    try:
        index = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as a tab-separated image index ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    if tuple(index.columns) != INDEX_COLUMNS:
        raise InputError(f"{path}: header must be {', '.join(INDEX_COLUMNS)}; found {list(index.columns)}")
    ids = pd.to_numeric(index["itemID"], errors="coerce")
    asins = dict(zip(item_map["itemID"], item_map["asin"].astype(str), strict=True))
    images: dict[int, Path] = {}
    unreadable = 0
    for row, (item, asin, image) in enumerate(zip(ids, index["asin"], index["path"], strict=True), start=2):
        if pd.isna(item) or item != int(item) or int(item) not in asins:
            raise InputError(f"{path}: line {row}: itemID {index['itemID'].iloc[row - 2]!r} is not in the item mapping")
        if asins[int(item)] != asin.strip():
            raise InputError(f"{path}: line {row}: asin {asin!r} differs from the mapping's {asins[int(item)]!r}")
        if not image.strip():
            continue
        if os.path.isfile(image) and os.access(image, os.R_OK):
            images[int(item)] = Path(image)
        else:
            unreadable += 1
    if unreadable:
        log.warning("%s: %d image paths are not readable files; those items have no image", path, unreadable)
    return images


def load_items(metadata: str, item_map: str, images_index: str | None) -> list[Item]:
    """Every mapped item in itemID order (row i = itemID i), with its image when the index has one.

    ``metadata``: an Amazon 2014 ``meta_<Cat>.json.gz``; ``item_map``: ``i_id_mapping.csv``;
    ``images_index``: the TSV of ``data.images.download_step`` (None: no item has an image). An item
    without a metadata row gets empty title/category and the text of all-missing fields.
    """
    from ..data.amazon import asin_strings, read_metadata
    from ..data.preprocess import read_mapping
    from .text import item_texts

    meta = read_metadata(metadata)
    mapping = read_mapping(item_map, "item").sort_values("itemID")
    mapping = mapping.assign(asin=asin_strings(mapping["asin"]).to_numpy())
    texts = item_texts(meta, mapping)
    rows = meta.drop_duplicates(subset="asin", keep="first").set_index("asin")
    for col in ("title", "categories"):
        if col not in rows.columns:
            rows[col] = None
    rows = rows.reindex(mapping["asin"].to_numpy())
    images = read_images_index(images_index, mapping) if images_index else {}
    return [
        Item(
            item_id=int(item),
            title=_field(title),
            category=leaf_category(categories),
            text=text,
            image=images.get(int(item)),
        )
        for item, title, categories, text in zip(
            mapping["itemID"], rows["title"], rows["categories"], texts, strict=True
        )
    ]


#: side of the blank (white) image of the ``input: {image: blank}`` knockout
BLANK_IMAGE_SIZE = 224


def knock_out_inputs(items: Sequence[Item], knockout: Mapping[str, str], blank: Path) -> list[Item]:
    """Encoder-input knockouts of a joint encoder, run as feature-set variants.

    ``{image: blank}``: every item that has an image gets one blank white image instead (written to
    ``blank``), so the set of mean-filled items stays that of the real run; ``{text: empty}``: title,
    category and text become empty strings. The item's other inputs are unchanged.
    """
    changes: dict[str, Any] = {}
    if knockout.get("text") == "empty":
        changes.update(title="", category="", text="")
    if knockout.get("image") == "blank":
        from PIL import Image

        from ..io import atomic_path

        with atomic_path(blank, suffix=".png") as tmp:
            Image.new("RGB", (BLANK_IMAGE_SIZE, BLANK_IMAGE_SIZE), "white").save(tmp, format="PNG")
    return [
        replace(item, **changes, **({"image": blank} if "image" in knockout and item.image is not None else {}))
        for item in items
    ]


def encode_step(
    *,
    metadata: str,
    item_map: str,
    features: str,
    sidecar: str,
    encoder: Mapping[str, Any],
    device: str,
    images_index: str | None = None,
    threads: int | None = None,
) -> None:
    """Workflow step: encode every item with ``encoder`` (a spec with ``kind``) into ``features``.

    Writes the float32 ``[n_items, dim]`` matrix (``.npy``) and the ``sidecar`` JSON: ``encoder`` (its
    ``describe()``), ``kind``, ``spec``, ``n_items``, ``dim``, ``dtype`` (of the features),
    ``missing_items`` (mean-filled item ids), ``device``, ``mmknockout_version`` and, for an
    encoder that generates text first (``lvlm``), ``generated_texts`` (itemID and text per item).
    ``device`` is ``cpu``, ``auto``, ``cuda`` or ``cuda:N``; ``threads`` sets torch's CPU threads.
    """
    from .. import __version__
    from ..device import resolve_device, set_threads
    from ..io import write_json
    from .extract import extract

    set_threads(threads)
    dev = str(resolve_device(device))
    blank = Path(features).with_name(f".{Path(features).name}.blank.png")
    items = knock_out_inputs(load_items(metadata, item_map, images_index), encoder.get("input") or {}, blank)
    enc = build_encoder(encoder, dev)
    try:
        matrix, missing, texts = extract(enc, items, features, spec=encoder)
    finally:
        blank.unlink(missing_ok=True)
    facts = {
        "encoder": enc.describe(),
        "kind": encoder["kind"],
        "spec": dict(encoder),
        "n_items": int(matrix.shape[0]),
        "dim": int(matrix.shape[1]),
        "dtype": str(matrix.dtype),
        "missing_items": missing,
        "device": dev,
        "mmknockout_version": __version__,
    }
    if texts is not None:  # the LVLM's generated texts, kept for keyword decoding
        facts["generated_texts"] = [{"itemID": i, "text": t} for i, t in sorted(texts.items())]
    write_json(sidecar, facts)
