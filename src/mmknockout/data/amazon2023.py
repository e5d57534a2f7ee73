"""Parsers for the Amazon Reviews 2023 (McAuley lab, Hou et al. 2024) per-category files.

* ``<Category>.jsonl.gz``: one JSON review per line with ``user_id``, ``parent_asin`` (the product;
  ``asin`` is the variant), ``rating`` (1-5), ``timestamp`` (unix *milliseconds*), ``title``,
  ``text``, ``images``, ``helpful_vote``, ``verified_purchase``.
* ``meta_<Category>.jsonl.gz``: one JSON product per line with ``parent_asin``, ``title``, ``store``,
  ``categories`` (one path, a list of strings), ``description`` and ``features`` (lists of strings),
  ``images`` (a list of ``{thumb, large, hi_res, variant}``), ``main_category``, ``details``, ...

Both are read into the frames of the 2014 parsers (:mod:`.amazon`), so the split, the text and the
image steps run unchanged: reviews -> ``userID`` (user_id), ``itemID`` (parent_asin), ``rating``,
``timestamp`` (seconds); products -> ``asin`` (parent_asin), ``title``, ``brand`` (store),
``categories`` (``[path]``, a list of lists as in 2014), ``description`` (the strings joined by spaces)
and ``imUrl``: the ``MAIN`` image (else the first), its ``hi_res`` link, else ``large``. Every
problem names the file and the line.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_error, require_file

SUFFIXES = (".jsonl.gz", ".jsonl")
REVIEW_KEYS = ("user_id", "parent_asin", "rating", "timestamp")
MS_PER_SECOND = 1000


def is_2023_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a 2023 JSON-lines file (by its name)."""
    return str(path).endswith(SUFFIXES)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-empty line; InputError naming the line otherwise."""
    opener = gzip.open if str(path).endswith(".gz") else open
    line_no = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {line_no} is not JSON ({exc.msg}): {line[:80]!r}") from None
                if not isinstance(record, dict):
                    raise InputError(f"{path}: line {line_no} is a {type(record).__name__}, expected an object")
                yield line_no, record
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        where = f"after line {line_no}" if line_no else "at the start"
        raise InputError(f"{path}: corrupt or truncated gzip stream {where} ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: line {line_no + 1} is not valid UTF-8 ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None


def read_reviews(path: str | os.PathLike) -> pd.DataFrame:
    """The reviews as ``userID``, ``itemID`` (parent_asin), ``rating`` (float64), ``timestamp`` (s, Int64)."""
    path = require_file(path, "reviews")
    rows = []
    for line_no, rec in _records(path):
        missing = [k for k in REVIEW_KEYS if k not in rec]
        if missing:
            raise InputError(f"{path}: line {line_no} has no {missing[0]!r} (expected {', '.join(REVIEW_KEYS)})")
        rating, stamp = rec["rating"], rec["timestamp"]
        for name, value in (("rating", rating), ("timestamp", stamp)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise InputError(f"{path}: line {line_no}: {name} {value!r} is not a number")
        rows.append((str(rec["user_id"]).strip(), str(rec["parent_asin"]).strip(), float(rating), int(stamp)))
    df = pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp"])
    df["rating"] = df["rating"].astype("float64")
    df["timestamp"] = (df["timestamp"].astype("int64") // MS_PER_SECOND).astype("Int64")
    for col in ("userID", "itemID"):
        df.loc[df[col] == "", col] = np.nan
    return df


def image_url(images: Any) -> str | None:
    """The product's image link: the ``MAIN`` variant (else the first image), ``hi_res`` else ``large``."""
    if not isinstance(images, list):
        return None
    entries = [i for i in images if isinstance(i, dict)]
    main = [i for i in entries if i.get("variant") == "MAIN"] or entries
    for entry in main[:1]:
        for key in ("hi_res", "large"):
            if isinstance(entry.get(key), str) and entry[key]:
                return entry[key]
    return None


def _joined(value: Any) -> Any:
    if isinstance(value, list):
        text = " ".join(str(v) for v in value if isinstance(v, str) and v.strip())
        return text or np.nan
    return value if isinstance(value, str) and value else np.nan


def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """The products as the 2014 metadata frame (``asin``, ``title``, ``brand``, ``categories``,
    ``description``, ``imUrl``) plus ``main_category``; a line without ``parent_asin`` is an error."""
    path = require_file(path, "metadata")
    rows = []
    for line_no, rec in _records(path):
        if not rec.get("parent_asin"):
            raise InputError(f"{path}: line {line_no} has no 'parent_asin'")
        categories = rec.get("categories")
        rows.append(
            {
                "asin": str(rec["parent_asin"]).strip(),
                "title": _joined(rec.get("title")),
                "brand": _joined(rec.get("store")),
                "categories": [list(categories)] if isinstance(categories, list) and categories else np.nan,
                "description": _joined(rec.get("description")),
                "imUrl": image_url(rec.get("images")),
                "main_category": _joined(rec.get("main_category")),
            }
        )
    columns = ["asin", "title", "brand", "categories", "description", "imUrl", "main_category"]
    return pd.DataFrame(rows, columns=columns)
