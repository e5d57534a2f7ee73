"""Fetch raw files with retries and sha256 checks (``resources/datasets.yaml``).

A file is downloaded to a temporary file beside its destination, its sha256 is checked, and only
then is it renamed onto the destination, so a failed or corrupted download never leaves a file
under the final name. ``file://`` URLs work, and an entry with ``source: local`` copies (or links)
a file from ``path:`` instead, for mirrors and offline use.

The registry is validated on load (:data:`REGISTRY_SCHEMA`, errors name the dataset, role and
field): URLs must be ``http``, ``https`` or ``file``; a stored ``file:`` name must be a plain
name (no ``/``, ``\\``, ``..``, no leading ``.``) and the destination must stay inside the output
folder; ``sha256`` is null or 64 hex digits. Redirects are followed to http(s) only. A dataset's
optional ``image_schemes`` lists the URL schemes its image download may fetch from the metadata's
``imUrl`` (default http and https, :data:`.images.WORKFLOW_IMAGE_SCHEMES`; ``[file]`` for the
bundled demo's images).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import DiskFullError, atomic_path, require_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_REGISTRY = REPO_ROOT / "resources" / "datasets.yaml"
ROLES = ("ratings", "metadata", "image_features")
URL_SCHEMES = ("http", "https", "file")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
FILE_NAME_PATTERN = r"^(?!\.)(?!.*\.\.)[^/\\\x00-\x1f]+$"

_FILE_ENTRY = {
    "type": "object",
    "required": ["file"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "pattern": FILE_NAME_PATTERN},
        "url": {"type": "string", "pattern": r"^(?i:https?|file):"},
        "source": {"const": "local"},
        "path": {"type": "string", "minLength": 1},
        "link": {"type": "boolean"},
        "sha256": {"type": ["string", "null"], "pattern": r"^[0-9a-fA-F]{64}$"},
    },
    "oneOf": [
        {"required": ["url"], "not": {"required": ["source"]}},
        {"required": ["source", "path"], "not": {"required": ["url"]}},
    ],
}
REGISTRY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["datasets"],
    "properties": {
        "datasets": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "category": {"type": "string"},
                    "files": {"type": "object", "additionalProperties": _FILE_ENTRY},
                    "expected": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                    "image_schemes": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"enum": list(URL_SCHEMES)},
                    },
                },
            },
        }
    },
}
_RULES = {
    "file": "must be a plain file name (no '/', '\\', '..', not starting with '.')",
    "url": f"must be a URL with scheme {', '.join(URL_SCHEMES)}",
    "sha256": "must be null or a string of 64 hex digits",
    "source": "must be 'local' (with path:)",
    "link": "must be true or false",
}


class DownloadError(InputError):
    """A download failed after all retries, or its checksum did not match."""


class _HttpOnlyRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would also follow one to ftp)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise DownloadError(
                f"refused redirect from {req.full_url} to {newurl!r}: only http(s) redirects are followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirect)


def sha256sum(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_url(url: Any, label: str = "url") -> str:
    """Return ``url`` if its scheme is http, https or file; else InputError naming ``label``."""
    scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else None
    if scheme not in URL_SCHEMES:
        raise InputError(f"{label}: {url!r} is not allowed; {_RULES['url']}")
    return url


def check_sha256(value: Any, label: str = "sha256") -> str | None:
    """Return ``value`` (stripped) if it is None or 64 hex digits; else InputError naming ``label``."""
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value.strip()):
        raise InputError(f"{label}: {value!r} {_RULES['sha256']}")
    return value.strip()


def check_file_name(name: Any, label: str = "file") -> str:
    """Return ``name`` if it is a plain file name that cannot leave its folder; else InputError."""
    if not isinstance(name, str) or not re.fullmatch(FILE_NAME_PATTERN, name) or name != name.strip():
        raise InputError(f"{label}: {name!r} {_RULES['file']}")
    return name


def destination(root: str | os.PathLike, name: str, label: str = "file") -> Path:
    """``root / name`` for a checked plain ``name``, refused if it resolves outside ``root``."""
    root = Path(root)
    dest = root / check_file_name(name, label)
    inside = Path(os.path.normpath(root.resolve() / name))  # the name itself is not resolved: it may be a link
    if inside.parent != root.resolve():
        raise InputError(f"{label}: {name!r} resolves to {inside}, outside {root.resolve()}")
    return dest


def verify_sha256(path: str | os.PathLike, expected: str | None, label: str | None = None) -> str:
    """Return the file's sha256; raise DownloadError naming both sums if ``expected`` differs."""
    expected = check_sha256(expected, f"sha256 for {label or path}")
    actual = sha256sum(path)
    if expected is not None and actual.lower() != str(expected).strip().lower():
        raise DownloadError(f"checksum mismatch for {label or path}: expected sha256 {expected}, got {actual}")
    return actual


def fetch(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` (atomic), retrying with exponential backoff, verifying sha256.

    An existing ``dest`` whose checksum matches (or any existing ``dest`` when ``sha256`` is None)
    is kept unless ``force``. On a checksum mismatch the download is discarded and DownloadError
    names the expected and actual sums; no file is left at ``dest``. HTTP 4xx errors are not
    retried. Only http, https and file URLs are fetched, and redirects only to http(s).
    """
    check_url(url)
    sha256 = check_sha256(sha256, f"sha256 for {url}")
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
                with _OPENER.open(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        out.write(block)
                        h.update(block)
                actual = h.hexdigest()
                if sha256 is not None and actual.lower() != sha256.strip().lower():
                    # raising inside atomic_path removes the temporary file; dest is untouched
                    raise DownloadError(
                        f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                        f"nothing was written to {dest}"
                    )
            log.info("fetched %s -> %s (sha256 %s)", url, dest, actual)
            return dest
        except DownloadError:
            if sha256 is not None and dest.exists() and sha256sum(dest) != sha256.lower():
                dest.unlink()  # a stale file with the wrong sum must not survive
            raise
        except DiskFullError:
            raise  # retrying cannot help
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


def copy_local(src: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None, link: bool = False) -> Path:
    """Copy (or symlink, ``link=True``) a local file to ``dest`` after verifying its sha256."""
    src, dest = require_file(src, "local source"), Path(dest)
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
    """Parse and validate ``resources/datasets.yaml`` (top-level key ``datasets``).

    Raises InputError naming the file, the dataset, role and field, and the rule broken.
    """
    import yaml

    path = Path(path) if path is not None else DEFAULT_REGISTRY
    path = require_file(path, "dataset registry", missing=f"dataset registry not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            reg = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(reg, dict) or not isinstance(reg.get("datasets"), dict):
        raise InputError(f"{path}: expected a top-level mapping 'datasets:'")
    validate_registry(reg, str(path))
    return reg


def validate_registry(reg: Mapping[str, Any], label: str = "dataset registry") -> None:
    """Check ``reg`` against :data:`REGISTRY_SCHEMA`; the first error names its field and rule."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(REGISTRY_SCHEMA)
    errors = sorted(validator.iter_errors(_plain(reg)), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        at = [str(p) for p in err.absolute_path]
        where = ".".join(at) or "top level"
        field = at[4] if len(at) == 5 and at[2] == "files" else None  # datasets.<name>.files.<role>.<field>
        rule = _RULES.get(field) or _entry_rule(err)
        raise InputError(f"{label}: {where}: {rule} (found {err.instance!r})")


def _entry_rule(err: Any) -> str:
    if err.validator == "oneOf":
        return "a file entry needs exactly one of url: or source: local with path:"
    if err.validator == "additionalProperties" and "file" in getattr(err, "schema", {}).get("properties", {}):
        allowed = ", ".join(_FILE_ENTRY["properties"])
        return f"unknown key in a file entry ({err.message}); allowed: {allowed}"
    return err.message


def _plain(obj: Any) -> Any:
    """YAML output as JSON-schema input: mapping keys as strings (YAML allows ``1:`` or ``null:``)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def fetch_file(
    entry: Mapping[str, Any], dest: str | os.PathLike, base_dir: str | os.PathLike | None = None, retries: int = 3
) -> Path:
    """Fetch one registry file entry (keys ``url`` or ``source: local`` + ``path``, ``sha256``, ``link``).

    Relative local paths are resolved against ``base_dir`` (default: the repository root).
    """
    label = f"registry entry {entry.get('file', dict(entry))!r}"
    sha = check_sha256(entry.get("sha256"), f"{label}: sha256")
    if entry.get("source") == "local":
        if not entry.get("path"):
            raise InputError(f"registry entry {dict(entry)} has source: local but no path:")
        src = Path(os.path.expandvars(os.path.expanduser(str(entry["path"]))))
        if not src.is_absolute():
            src = Path(base_dir or REPO_ROOT) / src
        return copy_local(src, dest, sha, link=bool(entry.get("link", False)))
    if not entry.get("url"):
        raise InputError(f"registry entry {dict(entry)} has neither url: nor source: local")
    return fetch(check_url(entry["url"], f"{label}: url"), dest, sha, retries=retries)


def fetch_dataset(
    name: str,
    out_dir: str | os.PathLike,
    registry: str | os.PathLike | Mapping | None = None,
    roles: tuple[str, ...] = ROLES,
    base_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Fetch the raw files of dataset ``name`` into ``out_dir`` under their upstream file names."""
    if isinstance(registry, Mapping):
        validate_registry(registry)
        reg = registry
    else:
        reg = load_registry(registry)
    datasets = reg["datasets"]
    if name not in datasets:
        raise InputError(f"unknown dataset '{name}'; the registry has {sorted(datasets)}")
    files = datasets[name].get("files", {})
    out = {}
    for role in roles:
        if role not in files:
            raise InputError(f"dataset '{name}' has no '{role}' file in the registry")
        entry = files[role]
        dest = destination(out_dir, entry["file"], f"dataset '{name}' {role}: file")
        out[role] = fetch_file(entry, dest, base_dir=base_dir)
    return out
