"""File access shared by every stage: checked opening of input files and atomic writes.

Inputs: :func:`require_file` refuses, with an :class:`InputError` naming the file, anything that
is not a readable regular file (missing, a FIFO or device, a directory, a symlink loop, no read
permission) before a parser opens it, so a bad path never hangs or surfaces as a raw OSError.

Outputs: a reader never sees a half-written file under its final name; a full disk gives
:class:`DiskFullError` and leaves neither the destination nor the temporary file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)

# the temporaries atomic_path makes: ".<name>.<8 random chars>.tmp<suffix>"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^/]*)?")
_FULL = (errno.ENOSPC, errno.EDQUOT)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class DiskFullError(InputError, OSError):
    """The disk (or quota) filled while writing; the message names the file being written."""


def read_error(path: str | os.PathLike, exc: OSError) -> InputError:
    """An InputError ``cannot read <path>: <reason>`` for an OSError raised while reading ``path``."""
    if exc.errno == errno.ELOOP:
        reason = "symlink loop (too many levels of symbolic links)"
    else:
        reason = (exc.strerror or str(exc)).lower()
    return InputError(f"cannot read {path}: {reason}")


def exists(path: str | os.PathLike) -> bool:
    """True when anything is at ``path``, including a dangling symlink or a symlink loop.

    Unlike :meth:`Path.exists` this does not report a broken link as absent, so an optional input
    that is present but unusable is passed to :func:`require_file` and reported.
    """
    return os.path.lexists(path)


def require_file(path: str | os.PathLike, what: str, missing: str | None = None) -> Path:
    """Return ``path`` if it is a readable regular file, else raise InputError naming it and the rule.

    ``missing`` replaces the default message ``<what> file not found: <path>``.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{what} file {path} is a symlink to a missing target ({os.readlink(path)})") from None
        raise InputError(missing or f"{what} file not found: {path}") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise InputError(f"{what} path is not a regular file: {path} is {kind}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise read_error(path, exc) from None
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On any error the temporary file is removed; ENOSPC/EDQUOT become :class:`DiskFullError`.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        _commit(tmp_path, path)
    except OSError as exc:
        if exc.errno in _FULL and not isinstance(exc, DiskFullError):
            err = DiskFullError(f"disk full while writing {path} ({exc.strerror or exc}); nothing was written")
            err.errno = exc.errno
            raise err from exc
        raise
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def _commit(tmp_path: Path, path: Path) -> None:
    if not tmp_path.is_symlink():  # a symlink written in place of the file is renamed as it is
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    os.replace(tmp_path, path)


def remove_stale_temporaries(root: str | os.PathLike, grace: float = 60.0) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp*`` files :func:`atomic_path` leaves when a process is killed.

    Walks ``root`` (not following symlinked directories) and removes only files or symlinks whose
    name matches that pattern and that were last modified more than ``grace`` seconds ago, so a
    write still in progress is left alone. Returns the removed paths, sorted.
    """
    removed = []
    cutoff = time.time() - grace
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if not _TEMP_NAME.fullmatch(name):
                continue
            p = Path(folder) / name
            try:
                st = os.lstat(p)
                if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and st.st_mtime < cutoff:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:  # removed meanwhile, e.g. renamed by the writer
                continue
    return sorted(removed)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
