"""Parsers for the Amazon 2014 (McAuley) per-category files (PROTOCOL sec 1); the 2023 release's
JSON-lines files are handed to :mod:`.amazon2023` (by file name) and come back in the same frames.

* ``ratings_<Cat>.csv``: "ratings only", headerless CSV ``user,item,rating,unix_time``.
* ``meta_<Cat>.json.gz``: gzip, one Python literal (a dict) per line; keys ``asin``, ``title``,
  ``brand``, ``categories`` (list of lists), ``description``, ``imUrl``, ``price``, ``related``,
  ``salesRank``. Read with :func:`ast.literal_eval` (never ``eval``).
* ``image_features_<Cat>.b``: binary records of a 10-byte ASIN followed by ``dim`` (4096)
  little-endian float32 values (Caffe FC7 activations).

Every problem with an input file raises :class:`~mmknockout.errors.InputError` whose message names
the file and the line or record.
"""

from __future__ import annotations

import ast
import gzip
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_error, require_file
from . import amazon2023
from .amazon2023 import is_2023_file

RATING_COLUMNS = ["userID", "itemID", "rating", "timestamp"]
ASIN_BYTES = 10


def _require_file(path: str | os.PathLike, what: str) -> Path:
    """The path if it is a readable regular file (no FIFO, device, directory or symlink loop)."""
    return require_file(path, what)


def read_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """Read a headerless ``user,item,rating,timestamp`` ratings CSV.

    Returns a frame with columns ``userID`` and ``itemID`` (str, NaN where empty), ``rating``
    (float64) and ``timestamp`` (nullable ``Int64``). Empty fields are kept as NA (the
    preprocessing drops them, as upstream does); a row with more than four fields, or a rating or
    timestamp that is not a number, raises :class:`InputError` naming the line (1-based). A 2023
    reviews file (``.jsonl.gz``) is read by :func:`.amazon2023.read_reviews` into the same frame.
    """
    if is_2023_file(path):
        return amazon2023.read_reviews(path)
    path = _require_file(path, "ratings")
    try:
        df = pd.read_csv(
            path,
            header=None,
            names=RATING_COLUMNS,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame(
            {
                "userID": pd.Series(dtype=object),
                "itemID": pd.Series(dtype=object),
                "rating": pd.Series(dtype="float64"),
                "timestamp": pd.Series(dtype="Int64"),
            }
        )
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path}: malformed ratings row ({exc}); expected 4 comma-separated fields user,item,rating,timestamp"
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    if df.empty:
        return df.assign(rating=df["rating"].astype("float64"), timestamp=df["timestamp"].astype("Int64"))

    out = df[["userID", "itemID"]].copy()
    for col in ("userID", "itemID"):
        out[col] = out[col].str.strip()
        out.loc[out[col] == "", col] = np.nan
    rating = pd.to_numeric(df["rating"].str.strip(), errors="coerce")
    _check_numeric(path, df["rating"], rating, "rating")
    ts = pd.to_numeric(df["timestamp"].str.strip(), errors="coerce")
    _check_numeric(path, df["timestamp"], ts, "timestamp")
    frac = ts.notna() & (ts != np.floor(ts))
    if frac.any():
        i = int(np.flatnonzero(frac.to_numpy())[0])
        raise InputError(
            f"{path}: line {line_of(path, i)}: timestamp {df['timestamp'].iloc[i]!r} is not a whole "
            "number of unix seconds"
        )
    out["rating"] = rating.astype("float64")
    out["timestamp"] = ts.round().astype("Int64")
    return out


def _check_numeric(path: Path, raw: pd.Series, parsed: pd.Series, field: str) -> None:
    bad = raw.notna() & parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: line {line_of(path, i)}: {field} {raw.iloc[i]!r} is not a number "
            "(expected user,item,rating,timestamp)"
        )


def line_of(path: Path, row: int) -> int:
    """1-based file line of parsed row ``row`` (0-based; the parser skips blank lines)."""
    seen = -1
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return line_no
    return row + 1


def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """Read a 2014 ``meta_<Cat>.json.gz`` (one Python-literal dict per line) into a DataFrame.

    Every key found becomes a column (missing keys are NaN); ``categories`` keeps its Python list
    value. A corrupt gzip stream, a line that is not a Python literal, a line that is not a dict or
    a dict without ``asin`` raises :class:`InputError` naming the line. A 2023 metadata file
    (``.jsonl.gz``) is read by :func:`.amazon2023.read_metadata` into the same columns.
    """
    if is_2023_file(path):
        return amazon2023.read_metadata(path)
    path = _require_file(path, "metadata")
    records: list[dict] = []
    line_no = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = ast.literal_eval(line)
                except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                    raise InputError(
                        f"{path}: line {line_no} is not a Python literal ({type(exc).__name__}: {exc}): {line[:80]!r}"
                    ) from None
                if not isinstance(rec, dict):
                    raise InputError(
                        f"{path}: line {line_no} is a {type(rec).__name__}, expected a dict "
                        "with keys asin, title, brand, categories, ..."
                    )
                if "asin" not in rec:
                    raise InputError(f"{path}: line {line_no} has no 'asin' key")
                records.append(rec)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        where = f"after line {line_no}" if line_no else "at the start"
        raise InputError(f"{path}: corrupt or truncated gzip stream {where} ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: line {line_no + 1} is not valid UTF-8 ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=["asin"])
    df["asin"] = df["asin"].astype(str)
    return df


def image_record_dtype(dim: int = 4096) -> np.dtype:
    """numpy dtype of one ``.b`` record: 10-byte ASIN + ``dim`` little-endian float32."""
    return np.dtype([("asin", f"S{ASIN_BYTES}"), ("feat", "<f4", (dim,))])


def read_image_features(
    path: str | os.PathLike, asin_to_item: Mapping[str, int], n_items: int, dim: int = 4096, chunk_records: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Read the upstream ``.b`` image features into an ``[n_items, dim]`` float32 matrix.

    Records whose ASIN is not in ``asin_to_item`` are skipped; items with no record get the mean of
    the matched rows (PROTOCOL 1.5). If an ASIN occurs twice the later record wins. The file is
    read in chunks (the Clothing file is ~24 GB), each chunk decoded with one structured
    ``numpy.frombuffer``.

    Returns ``(matrix, missing_item_ids)`` with the missing ids sorted ascending.
    """
    path = _require_file(path, "image feature")
    rec = image_record_dtype(dim)
    size = path.stat().st_size
    n_records, rest = divmod(size, rec.itemsize)
    if rest:
        raise InputError(
            f"{path}: truncated image-feature file: {size} bytes is not a multiple of the "
            f"record size {rec.itemsize} (10-byte ASIN + {dim} float32); record {n_records} "
            f"(0-based) has only {rest} bytes"
        )
    keys = pd.Index(list(asin_to_item.keys()), dtype=object)
    values = np.fromiter(asin_to_item.values(), dtype=np.int64, count=len(asin_to_item))
    if values.size and (values.min() < 0 or values.max() >= n_items):
        raise InputError(
            f"image features: item ids of the ASIN map must lie in [0, {n_items}); found {values.min()}..{values.max()}"
        )
    try:
        matrix, found = _read_records(path, rec, n_records, keys, values, n_items, chunk_records)
    except OSError as exc:
        raise read_error(path, exc) from None
    if not found.any():
        raise InputError(
            f"{path}: none of its {n_records} records matches an item of the dataset "
            f"({n_items} items); is it the file of the right category?"
        )
    missing = np.flatnonzero(~found).astype(np.int64)
    if missing.size:
        matrix[missing] = matrix[found].astype(np.float64).mean(axis=0).astype(np.float32)
    return matrix, missing


def _read_records(
    path: Path, rec: np.dtype, n_records: int, keys: pd.Index, values: np.ndarray, n_items: int, chunk_records: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scan the ``.b`` records chunk by chunk; returns (matrix, found mask) over the dataset's items."""
    matrix = np.zeros((n_items, rec["feat"].shape[0]), dtype=np.float32)
    found = np.zeros(n_items, dtype=bool)
    with open(path, "rb") as fh:
        done = 0
        while done < n_records:
            count = min(chunk_records, n_records - done)
            buf = fh.read(count * rec.itemsize)
            if len(buf) != count * rec.itemsize:
                raise InputError(f"{path}: file shrank while reading at record {done}")
            block = np.frombuffer(buf, dtype=rec)
            asins = block["asin"].astype(f"U{ASIN_BYTES}")
            pos = keys.get_indexer(asins)
            hit = np.flatnonzero(pos >= 0)
            if hit.size:
                items = values[pos[hit]]
                feats = block["feat"][hit]
                if not np.isfinite(feats).all():
                    r, _ = np.argwhere(~np.isfinite(feats))[0]
                    raise InputError(
                        f"{path}: record {done + int(hit[r])} (ASIN {asins[hit[r]]}) holds a non-finite value"
                    )
                matrix[items] = feats
                found[items] = True
            done += count
    return matrix, found


def write_image_features(path: str | os.PathLike, asins: list[str], features: np.ndarray) -> None:
    """Write records in the upstream ``.b`` format (used by the demo generator and tests)."""
    from ..io import atomic_path

    features = np.asarray(features, dtype="<f4")
    rec = image_record_dtype(features.shape[1])
    out = np.zeros(len(asins), dtype=rec)
    enc = [a.encode("ascii") for a in asins]
    if any(len(a) > ASIN_BYTES for a in enc):
        raise InputError(f"ASINs must be at most {ASIN_BYTES} ASCII characters")
    out["asin"] = enc
    out["feat"] = features
    with atomic_path(path, suffix=".b") as tmp:
        out.tofile(tmp)


def asin_strings(values) -> pd.Series:
    """ASINs as 10-character strings, restoring leading zeros lost when a mapping was read as numbers.

    ASINs are always 10 characters; ISBN-style ASINs such as ``0097293751`` become the integer
    97293751 when ``i_id_mapping.csv`` is read with plain ``pd.read_csv``.
    """
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s):
        return s.map(lambda v: f"{int(v):0{ASIN_BYTES}d}")
    return s.astype(str).str.strip()
