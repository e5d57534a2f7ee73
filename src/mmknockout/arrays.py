"""Reading ``.npy`` files that come from outside: bounded headers, no code execution.

* :func:`load_npy` reads a numeric ``.npy`` after checking its header against the file size, so a
  header claiming an absurd shape is refused before anything is allocated.
* :func:`load_pickled_npy` reads a 0-d object ``.npy`` (MMRec's ``user_graph_dict.npy``) with an
  unpickler that can only rebuild numpy arrays, dtypes and scalars and plain builtin containers;
  any other reference (``os.system``, ``builtins.eval``, ...) is refused without being called.
* :func:`load_feature_matrix` and :func:`check_finite` validate item feature matrices.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from .errors import InputError
from .io import require_file

try:
    from numpy._core import multiarray as _MULTIARRAY
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _MULTIARRAY
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(mod, "_reconstruct"): _MULTIARRAY._reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _MULTIARRAY.scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{("builtins", t.__name__): t for t in (dict, list, tuple, int, float, str)},
}


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals in ``_ALLOWED_GLOBALS``; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a data file may only hold "
                "numpy arrays and plain dicts/lists/tuples/numbers/strings"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent reference: data files may not reference objects")


def _read_header(fh: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an open ``.npy``; InputError for a bad magic string or header."""
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except (ValueError, EOFError, SyntaxError) as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None
    return tuple(int(n) for n in shape), dtype


def npy_header(path: str | os.PathLike, what: str = "array") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, checked against the file size (nothing is loaded).

    Raises InputError naming the file when it is not a readable regular ``.npy`` file or when the
    header claims more data than the file holds (e.g. a forged shape of 10^12 rows).
    """
    path = require_file(path, what)
    with open(path, "rb") as fh:
        shape, dtype = _read_header(fh, path)
        offset = fh.tell()
    if not dtype.hasobject:
        need = math.prod(shape) * dtype.itemsize
        size = path.stat().st_size
        if need > size - offset:
            raise InputError(
                f"{path}: the .npy header claims shape {shape} of {dtype} ({need:,} bytes of data) "
                f"but the file size is {size:,} bytes ({size - offset:,} after the header); the file "
                "is truncated or forged"
            )
    return shape, dtype


def load_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """Load a numeric ``.npy`` without pickle, after :func:`npy_header` has checked it."""
    path = Path(path)
    _, dtype = npy_header(path, what)
    if dtype.hasobject:
        raise InputError(
            f"{path}: cannot read {what}: it holds pickled Python objects (dtype {dtype}), which "
            "are never loaded; expected a numeric array"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read {what} as a .npy array ({exc})") from None


def load_pickled_npy(path: str | os.PathLike, what: str = "object array") -> np.ndarray:
    """Load a 0-d object ``.npy`` (a pickled Python value) with the data-only unpickler.

    Raises InputError naming the file when it is not such a file or its pickle references anything
    but numpy arrays/dtypes/scalars and builtin containers, numbers and strings.
    """
    path = require_file(path, what)
    with open(path, "rb") as fh:
        shape, dtype = _read_header(fh, path)
        if not dtype.hasobject or shape != ():
            raise InputError(
                f"{path}: expected a pickled {what} (a 0-d object .npy), found shape {shape} of dtype {dtype}"
            )
        payload = fh.read()
    try:
        obj = _DataOnlyUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any malformed stream: EOF, bad opcode, wrong arguments, huge shapes
        raise InputError(f"{path}: cannot unpickle the {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, np.ndarray) or obj.dtype != object or obj.shape != ():
        raise InputError(f"{path}: expected a pickled 0-d object array holding the {what}, found {type(obj).__name__}")
    return obj


def load_feature_matrix(path: str | os.PathLike, n_items: int, name: str = "feature") -> np.ndarray:
    """Load a ``[n_items, dim]`` feature matrix as float32, checking shape and finiteness.

    Raises :class:`InputError` naming the file when it is missing, not a readable regular file or
    not a valid ``.npy`` (including a header claiming more data than the file holds), is not 2-d,
    has a row count other than ``n_items``, or holds NaN/inf (the first bad row and column are
    named; values too large for float32 count as inf).
    """
    path = require_file(path, f"{name} features", missing=f"{name} features not found: {path}")
    shape, dtype = npy_header(path, f"{name} features")
    if dtype.hasobject:
        return load_npy(path, f"{name} features")  # raises: object arrays are refused
    if len(shape) != 2:
        raise InputError(f"{path}: {name} features must be a 2-d matrix [items, dim], found shape {shape}")
    if shape[0] != n_items:
        raise InputError(
            f"{path}: {name} features have {shape[0]} rows but the dataset has {n_items} items (row i must be itemID i)"
        )
    if shape[1] == 0:
        raise InputError(f"{path}: {name} features have zero columns")
    if not np.issubdtype(dtype, np.number) or dtype.kind == "c":
        raise InputError(f"{path}: {name} features must be real numbers, found dtype {dtype}")
    arr = load_npy(path, f"{name} features")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    check_finite(out, f"{path}: {name} features")
    return out


def check_finite(matrix: np.ndarray, what: str) -> None:
    """Raise InputError naming the first row/column holding NaN or inf."""
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(
            f"{what}: non-finite value {matrix[row, col]} at row {row} (itemID {row}), column {col}"
            f"; {int(bad.any(axis=1).sum())} row(s) affected"
        )
