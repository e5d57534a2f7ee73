"""Download one product image per item from the metadata's ``imUrl`` (for the encoder-swap study).

Images land in ``out_dir/<asin><ext>`` (extension from the URL, default ``.jpg``); items with no URL
or a failed download are written to a failures list, one ``itemID\tasin\treason`` per line. Files
already present are kept, so an interrupted download resumes where it stopped.

The metadata comes from the internet, so only URLs with a scheme in ``schemes`` are fetched
(default :data:`IMAGE_URL_SCHEMES`: http, https and, for offline mirrors, file; the workflow's
step allows http and https only, plus whatever the dataset's ``image_schemes`` in the registry
lists: ``file`` for the bundled demo). A relative ``file:`` URL (``file:resources/demo/images/x.png``,
no ``//``) is a path relative to ``root``, the repository root by default. An ASIN that is not a
plain file name is refused (it cannot write outside ``out_dir``), and an image larger than
:data:`MAX_IMAGE_BYTES` is dropped; each is a failure with its reason.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ..io import DiskFullError, atomic_path, write_text
from .download import REPO_ROOT

MAX_IMAGE_BYTES = 32 << 20
IMAGE_URL_SCHEMES = ("http", "https", "file")
#: what the workflow's download step fetches unless the registry's ``image_schemes`` says otherwise
WORKFLOW_IMAGE_SCHEMES = ("http", "https")
_SAFE_ASIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def image_name(asin: str, url: str) -> str:
    ext = os.path.splitext(url.split("?")[0])[1].lower()
    return asin + (ext if ext in (".jpg", ".jpeg", ".png", ".gif", ".webp") else ".jpg")


def refusal(asin: str, url: str, schemes: tuple[str, ...] = IMAGE_URL_SCHEMES) -> str | None:
    """Why an (asin, url) pair must not be downloaded, or None when it may."""
    if not _SAFE_ASIN.fullmatch(asin):
        return f"refused: asin {asin!r} is not a plain file name"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in schemes:
        return f"refused: URL scheme {scheme or 'none'!r} (allowed: {', '.join(schemes)})"
    return None


def resolve_url(url: str, root: str | Path) -> str:
    """A relative ``file:`` URL (no authority, relative path) as an absolute one under ``root``; others unchanged."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc or parts.path.startswith("/"):
        return url
    return (Path(root) / urllib.request.url2pathname(parts.path)).resolve().as_uri()


def _field(value: object) -> str:
    """A value safe for one tab-separated field (tabs and line breaks become spaces)."""
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _download(url: str, dest: Path, timeout: float) -> str | None:
    if dest.exists():
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest, suffix=dest.suffix) as tmp:
            data = resp.read(MAX_IMAGE_BYTES + 1)
            if len(data) > MAX_IMAGE_BYTES:
                raise ValueError(f"image larger than {MAX_IMAGE_BYTES} bytes")
            tmp.write_bytes(data)
        return None
    except DiskFullError:
        raise  # every further image would fail the same way
    except Exception as exc:  # noqa: BLE001 - any network or file error is recorded as a failure, not raised
        return _field(f"{type(exc).__name__}: {exc}")


def download_images(
    metadata: pd.DataFrame,
    item_map: pd.DataFrame,
    out_dir: str | Path,
    failures: str | Path,
    threads: int = 16,
    timeout: float = 10.0,
    schemes: tuple[str, ...] = IMAGE_URL_SCHEMES,
    root: str | Path = REPO_ROOT,
) -> pd.DataFrame:
    """Download every mapped item's image; returns a frame itemID, asin, path (None where missing).

    Pass ``schemes=("http", "https")`` to refuse ``file:`` URLs in metadata from an untrusted source;
    relative ``file:`` URLs are resolved against ``root``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    urls = metadata.set_index("asin")["imUrl"] if "imUrl" in metadata else pd.Series(dtype=object)
    items = item_map.sort_values("itemID")
    jobs = []
    for item, asin in zip(items["itemID"], items["asin"], strict=True):
        url = urls.get(asin)
        url = url if isinstance(url, str) and url.strip() else None
        refused = refusal(str(asin), url, schemes) if url else None
        fetch = resolve_url(url, root) if url and not refused else url
        jobs.append((item, asin, fetch, refused, out_dir / image_name(asin, url) if url and not refused else None))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        errors = list(pool.map(lambda j: "no imUrl" if j[2] is None else j[3] or _download(j[2], j[4], timeout), jobs))
    write_text(
        failures,
        "".join(f"{item}\t{_field(asin)}\t{err}\n" for (item, asin, *_), err in zip(jobs, errors, strict=True) if err),
    )
    return pd.DataFrame(
        {
            "itemID": [j[0] for j in jobs],
            "asin": [j[1] for j in jobs],
            "path": [str(j[4]) if err is None else None for j, err in zip(jobs, errors, strict=True)],
        }
    )


def download_step(
    *,
    metadata: str,
    item_map: str,
    images: str,
    index: str,
    failures: str,
    workers: int = 16,
    schemes: Sequence[str] | None = None,
) -> None:
    """Workflow step: one image per item from the metadata's ``imUrl``, an index of what arrived;
    ``schemes`` are the URL schemes fetched (the dataset's ``image_schemes`` in the registry;
    default :data:`WORKFLOW_IMAGE_SCHEMES`)."""
    from .amazon import read_metadata
    from .preprocess import read_mapping

    table = download_images(
        read_metadata(metadata),
        read_mapping(item_map, "item"),
        images,
        failures,
        threads=workers,
        schemes=tuple(schemes or WORKFLOW_IMAGE_SCHEMES),
    )
    with atomic_path(index) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    print(f"{table['path'].notna().sum()} of {len(table)} images available")
