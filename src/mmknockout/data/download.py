"""Fetch raw files with retries and sha256 checks (``resources/datasets.yaml``).

A file is downloaded to a temporary file beside its destination, its sha256 is checked, and only
then is it renamed onto the destination, so a failed or corrupted download never leaves a file
under the final name. ``file://`` URLs work, and an entry with ``source: local`` copies (or links)
a file from ``path:`` instead, for mirrors and offline use.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..io import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_REGISTRY = REPO_ROOT / "resources" / "datasets.yaml"
ROLES = ("ratings", "metadata", "image_features")


class DownloadError(InputError):
    """A download failed after all retries, or its checksum did not match."""


def sha256sum(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None, label: str | None = None) -> str:
    """Return the file's sha256; raise DownloadError naming both sums if ``expected`` differs."""
    actual = sha256sum(path)
    if expected is not None and actual.lower() != str(expected).strip().lower():
        raise DownloadError(f"checksum mismatch for {label or path}: expected sha256 {expected}, got {actual}")
    return actual


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, retries: int = 3,
          backoff: float = 2.0, timeout: float = 60.0, force: bool = False) -> Path:
    """Download ``url`` to ``dest`` (atomic), retrying with exponential backoff, verifying sha256.

    An existing ``dest`` whose checksum matches (or any existing ``dest`` when ``sha256`` is None)
    is kept unless ``force``. On a checksum mismatch the download is discarded and DownloadError
    names the expected and actual sums; no file is left at ``dest``. HTTP 4xx errors are not
    retried.
    """
    dest = Path(dest)
    if dest.exists() and not force:
        if sha256 is None:
            return dest
        try:
            verify_sha256(dest, sha256)
            return dest
        except DownloadError:
            log.warning("%s exists but its checksum differs; downloading again", dest)
    last: Exception | None = None
    for attempt in range(1, max(1, retries) + 1):
        try:
            with atomic_path(dest, suffix=".part") as tmp:
                h = hashlib.sha256()
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        out.write(block)
                        h.update(block)
                actual = h.hexdigest()
                if sha256 is not None and actual.lower() != sha256.strip().lower():
                    # raising inside atomic_path removes the temporary file; dest is untouched
                    raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                                        f"nothing was written to {dest}")
            log.info("fetched %s -> %s (sha256 %s)", url, dest, actual)
            return dest
        except DownloadError:
            if dest.exists() and sha256sum(dest) != sha256.strip().lower():
                dest.unlink()  # a stale file with the wrong sum must not survive
            raise
        except urllib.error.HTTPError as exc:
            last = exc
            if 400 <= exc.code < 500:
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = exc
        if attempt < retries:
            wait = backoff ** (attempt - 1)
            log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, last, attempt, retries - 1, wait)
            time.sleep(wait)
    raise DownloadError(f"could not download {url} after {retries} attempt(s): {last}")


def copy_local(src: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None,
               link: bool = False) -> Path:
    """Copy (or symlink, ``link=True``) a local file to ``dest`` after verifying its sha256."""
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise InputError(f"local source file not found: {src}")
    verify_sha256(src, sha256, label=str(src))
    if link:
        with atomic_path(dest, suffix=".lnk") as tmp:
            tmp.unlink()
            tmp.symlink_to(src.resolve())
    else:
        with atomic_path(dest, suffix=".part") as tmp:
            shutil.copyfile(src, tmp)
    return dest


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Parse ``resources/datasets.yaml`` (top-level key ``datasets``)."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_REGISTRY
    if not path.exists():
        raise InputError(f"dataset registry not found: {path}")
    with open(path) as fh:
        reg = yaml.safe_load(fh) or {}
    if not isinstance(reg.get("datasets"), dict):
        raise InputError(f"{path}: expected a top-level mapping 'datasets:'")
    return reg


def fetch_file(entry: Mapping[str, Any], dest: str | os.PathLike, base_dir: str | os.PathLike | None = None,
               retries: int = 3) -> Path:
    """Fetch one registry file entry (keys ``url`` or ``source: local`` + ``path``, ``sha256``, ``link``).

    Relative local paths are resolved against ``base_dir`` (default: the repository root).
    """
    sha = entry.get("sha256")
    if entry.get("source") == "local":
        if not entry.get("path"):
            raise InputError(f"registry entry {dict(entry)} has source: local but no path:")
        src = Path(os.path.expandvars(os.path.expanduser(str(entry["path"]))))
        if not src.is_absolute():
            src = Path(base_dir or REPO_ROOT) / src
        return copy_local(src, dest, sha, link=bool(entry.get("link", False)))
    if not entry.get("url"):
        raise InputError(f"registry entry {dict(entry)} has neither url: nor source: local")
    return fetch(entry["url"], dest, sha, retries=retries)


def fetch_dataset(name: str, out_dir: str | os.PathLike, registry: str | os.PathLike | Mapping | None = None,
                  roles: tuple[str, ...] = ROLES, base_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Fetch the raw files of dataset ``name`` into ``out_dir`` under their upstream file names."""
    reg = registry if isinstance(registry, Mapping) else load_registry(registry)
    datasets = reg["datasets"]
    if name not in datasets:
        raise InputError(f"unknown dataset '{name}'; the registry has {sorted(datasets)}")
    files = datasets[name].get("files", {})
    out = {}
    for role in roles:
        if role not in files:
            raise InputError(f"dataset '{name}' has no '{role}' file in the registry")
        entry = files[role]
        out[role] = fetch_file(entry, Path(out_dir) / entry["file"], base_dir=base_dir)
    return out


if __name__ == "__main__":  # pragma: no cover - thin CLI
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Fetch the raw files of one dataset")
    ap.add_argument("dataset")
    ap.add_argument("out_dir")
    ap.add_argument("--registry", default=None)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    try:
        for role, p in fetch_dataset(a.dataset, a.out_dir, a.registry).items():
            print(role, p)
    except InputError as exc:
        sys.exit(f"error: {exc}")
