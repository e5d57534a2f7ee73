"""Strict YAML loading, model hyper-parameter files, grid points and params ids.

A grid point has one name everywhere (Snakefile, CLI, run records): ``key~value`` pairs sorted
by key and joined by ``+`` (``default`` for a model without a grid), e.g.
``dropout~0.8+reg_weight~0.0001``. No commas or ``=``: cluster executors pass wildcards as
``name=value,...`` lists, which such characters would split.

This module is the bottom layer of the configuration code: it imports neither
:mod:`mmknockout.config` nor :mod:`mmknockout.analysis`.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import InputError
from .models.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "config" / "models"
MODEL_SCHEMA = ROOT / "config" / "model_schema.yaml"
DEFAULT_PARAMS = "default"
KEY_SEP, PAIR_SEP = "~", "+"
MAX_MESSAGE = 500
MAX_ALIAS_NODES = 10_000


def bounded(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters, so a huge value is never printed whole."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message) - limit} more characters)"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys and alias bombs."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        extra = _expanded_size(node, {}, set()) - _distinct_nodes(node)
        if extra > MAX_ALIAS_NODES:
            raise yaml.YAMLError(f"aliases expand to more than {MAX_ALIAS_NODES} extra nodes; refusing to build it")
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        bounded(f"duplicate key {key!r} on line {line} (first on line {first_line[key]})"),
                        key_node.start_mark,
                    )
                first_line[key] = line
            except TypeError:
                continue  # unhashable key: the base class reports it
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """Nodes the document would have with every alias copied out (memoised: linear time)."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in active:
        raise yaml.YAMLError("recursive alias: a node contains itself")
    active.add(id(node))
    size = 1 + sum(_expanded_size(child, memo, active) for child in _children(node))
    active.discard(id(node))
    memo[id(node)] = size
    return size


def _distinct_nodes(root: yaml.Node) -> int:
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file strictly: no duplicate keys, no alias bombs; errors bounded in length."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise InputError(bounded(f"{path}: not valid YAML: {exc}")) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise InputError(f"{path}: not valid YAML: nested too deeply") from None


def non_finite(value: Any, where: tuple = ()) -> tuple | None:
    """The path of the first NaN or infinite number inside ``value``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found = non_finite(child, (*where, key))
        if found is not None:
            return found
    return None


def dotted(path: Any) -> str:
    return ".".join(str(p) for p in path)


def first_schema_error(validator: jsonschema.protocols.Validator, instance: Any) -> jsonschema.ValidationError | None:
    """The schema violation to report: the one at the shallowest, first-sorted path."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    return errors[0] if errors else None


def closest_message(alternatives: list[jsonschema.ValidationError]) -> str:
    """The message of the alternative the value came closest to: not one it fails by type alone."""
    shallow = ("type", "enum")
    near = [e for e in alternatives if e.relative_path or e.validator not in shallow] or alternatives
    best = jsonschema.exceptions.best_match(near)
    where = dotted(best.relative_path)
    return f"{where}: {best.message}" if where else best.message


def _model_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_model_schema())


@functools.lru_cache(maxsize=1)
def _model_schema() -> dict:
    return copy.deepcopy(load_yaml(MODEL_SCHEMA))


@functools.cache
def model_config(model: str, model_dir: str | Path = MODEL_DIR) -> dict[str, Any]:
    """A model's hyper-parameter file, checked against config/model_schema.yaml (cached; read-only)."""
    if model not in MODELS:
        raise InputError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    path = Path(model_dir) / f"{model}.yaml"
    y = load_yaml(path)
    bad = non_finite(y)
    if bad is not None:
        raise InputError(f"{path} field '{dotted(bad)}': NaN and infinite numbers are not allowed")
    err = first_schema_error(_model_validator(), y)
    if err is not None:
        message = closest_message(err.context) if err.context else err.message
        raise InputError(bounded(f"{path} field '{dotted(err.path) or '(top level)'}': {message}"))
    extra = sorted(set(y.get("demo_grid", {})) - set(y["grid"]) - set(y["fixed"]))
    if extra:  # a demo value may replace a fixed one (e.g. a faster learning rate for the small demo data)
        raise InputError(
            f"{path} field 'demo_grid': {extra} not in 'grid' or 'fixed' (demo_grid keys must be grid or fixed keys)"
        )
    return y


def grid_points(model: str, grid: str = "full", model_dir: str | Path = MODEL_DIR) -> list[dict[str, Any]]:
    """Every grid point of a model: ``grid='full'`` (the paper grid) or ``'demo'`` (demo_grid)."""
    if grid not in ("full", "demo"):
        raise InputError(f"grid must be 'full' or 'demo', got {grid!r}")
    y = model_config(model, model_dir)
    if grid == "full" and "search" in y:
        points = search_points(y["grid"], y["search"])
        _refuse_equal_ids(model, grid, points)
        return points
    space = y["grid"] if grid == "full" else y.get("demo_grid", {k: v[:1] for k, v in y["grid"].items()})
    keys = sorted(space)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]
    _refuse_equal_ids(model, grid, points)
    return points


def search_points(choices: Mapping[str, list], search: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A seeded random search (model yaml ``search``): ``draws`` points; each key of ``choices`` drawn
    uniformly from its list, each key of ``search.space`` from its distribution, in sorted key order."""
    import numpy as np

    rng = np.random.default_rng(search["seed"])
    points = []
    for _ in range(search["draws"]):
        point = {k: choices[k][int(rng.integers(len(choices[k])))] for k in sorted(choices)}
        for key in sorted(search["space"]):
            ((kind, (low, high)),) = search["space"][key].items()
            if kind == "uniform_int":
                point[key] = int(rng.integers(int(low), int(high) + 1))
            else:
                value = float(rng.uniform(low, high))
                point[key] = float(f"{math.exp(value) if kind == 'loguniform' else value:.4g}")
        points.append(dict(sorted(point.items())))
    return points


def _refuse_equal_ids(model: str, grid: str, points: list[dict[str, Any]]) -> None:
    seen: dict[str, dict] = {}
    for point in points:
        pid = params_id(point)
        if pid in seen:
            raise InputError(
                bounded(
                    f"config/models/{model}.yaml field '{'grid' if grid == 'full' else 'demo_grid'}': "
                    f"grid points {seen[pid]} and {point} share the params id '{pid}'"
                )
            )
        seen[pid] = point


def params_id(point: Mapping[str, Any]) -> str:
    """The name of a grid point (see the module docstring)."""
    if not point:
        return DEFAULT_PARAMS
    return PAIR_SEP.join(f"{k}{KEY_SEP}{format_value(point[k])}" for k in sorted(point))


def parse_params_id(model: str, pid: str, model_dir: str | Path = MODEL_DIR) -> dict[str, Any]:
    """Full hyper-parameters (fixed values overridden by the grid point) of a params id."""
    y = model_config(model, model_dir)
    point: dict[str, Any] = {}
    if pid != DEFAULT_PARAMS:
        for pair in pid.split(PAIR_SEP):
            key, _, value = pair.partition(KEY_SEP)
            if key not in y["grid"] and key not in y["fixed"] and key not in y.get("search", {}).get("space", {}):
                raise InputError(bounded(f"{model}: unknown hyper-parameter '{key}' in '{pid}'"))
            point[key] = parse_value(value)
    return {**y["fixed"], **point}


def format_value(value: Any) -> str:
    """A grid value as it appears in a params id (``str``: exact for floats, as ``repr``)."""
    if isinstance(value, (list, dict)):
        raise InputError(bounded(f"grid values must be scalars, got {value!r}"))
    return str(value)


def parse_value(text: str) -> Any:
    """Inverse of :func:`format_value` for numbers, booleans and plain strings."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
