"""Workflow configuration: schema validation, model grids and run identifiers.

The Snakefile and the CLI both go through this module, so a grid point has one name everywhere:
``key~value`` pairs sorted by key and joined by ``+`` (``default`` for a model without a grid), e.g.
``dropout~0.8+reg_weight~0.0001``. No commas or ``=``: cluster executors pass wildcards as
``name=value,...`` lists, which such characters would split.
"""
from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .errors import InputError
from .knockout import parse_conditions
from .models.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
MODEL_DIR = ROOT / "config" / "models"
DEFAULT_PARAMS = "default"
KEY_SEP, PAIR_SEP = "~", "+"


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None


def validate_config(config: Mapping[str, Any], schema_path: str | Path = SCHEMA) -> None:
    """Check the config against the schema, then the cross-field rules the schema cannot express."""
    schema = load_yaml(schema_path)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "(top level)"
        raise InputError(f"config field '{where}': {err.message}")
    unknown = [m for m in config["models"] if m not in MODELS]
    if unknown:
        raise InputError(f"config field 'models': unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    parse_conditions(config["conditions"])
    for name in config.get("figures", {}).get("conditions", []):
        if name not in config["conditions"]:
            raise InputError(f"config field 'figures.conditions': unknown condition '{name}'")
    for ds, spec in config["datasets"].items():
        for fs in spec["feature_sets"]:
            if fs not in config["feature_sets"]:
                raise InputError(f"config field 'datasets.{ds}.feature_sets': unknown feature set '{fs}'")
        if spec["source"] == "mmrec" and not spec.get("path"):
            raise InputError(f"config field 'datasets.{ds}.path': required for source mmrec")
    sweeps = config.get("sweeps")
    if sweeps:
        if sweeps["dataset"] not in config["datasets"]:
            raise InputError(f"config field 'sweeps.dataset': unknown dataset '{sweeps['dataset']}'")
        if sweeps.get("feature_set", "default") not in config["datasets"][sweeps["dataset"]]["feature_sets"]:
            raise InputError(f"config field 'sweeps.feature_set': not a feature set of dataset '{sweeps['dataset']}'")
    for fs, spec in config["feature_sets"].items():
        for name in spec.get("conditions", []):
            if name not in config["conditions"]:
                raise InputError(f"config field 'feature_sets.{fs}.conditions': unknown condition '{name}'")
        for modality in ("text", "image"):
            if spec[modality] != "provided" and spec[modality] not in config["encoders"].get(modality, {}):
                raise InputError(f"config field 'feature_sets.{fs}.{modality}': unknown {modality} encoder '{spec[modality]}'")


def all_conditions(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configured conditions plus those the VBPR sweeps add."""
    from .analysis.sweeps import sweep_conditions

    return {**config["conditions"], **sweep_conditions(config.get("sweeps") or {})}


@functools.lru_cache(maxsize=None)
def model_config(model: str, model_dir: str | Path = MODEL_DIR) -> dict[str, Any]:
    """A model's yaml (cached; treat as read-only)."""
    if model not in MODELS:
        raise InputError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    y = load_yaml(Path(model_dir) / f"{model}.yaml")
    for key in ("fixed", "grid"):
        if not isinstance(y.get(key), dict):
            raise InputError(f"config/models/{model}.yaml: '{key}' must be a mapping")
    return y


def grid_points(model: str, grid: str = "full", model_dir: str | Path = MODEL_DIR) -> list[dict[str, Any]]:
    """Every grid point of a model: ``grid='full'`` (the paper grid) or ``'demo'`` (demo_grid)."""
    y = model_config(model, model_dir)
    space = y["grid"] if grid == "full" else y.get("demo_grid", {k: v[:1] for k, v in y["grid"].items()})
    keys = sorted(space)
    for k in keys:
        if not isinstance(space[k], list) or not space[k]:
            raise InputError(f"config/models/{model}.yaml: grid entry '{k}' must be a non-empty list")
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def params_id(point: Mapping[str, Any]) -> str:
    if not point:
        return DEFAULT_PARAMS
    return PAIR_SEP.join(f"{k}{KEY_SEP}{_fmt(point[k])}" for k in sorted(point))


def parse_params_id(model: str, pid: str, model_dir: str | Path = MODEL_DIR) -> dict[str, Any]:
    """Full hyper-parameters (fixed values overridden by the grid point) of a params id."""
    y = model_config(model, model_dir)
    point: dict[str, Any] = {}
    if pid != DEFAULT_PARAMS:
        for pair in pid.split(PAIR_SEP):
            key, _, value = pair.partition(KEY_SEP)
            if key not in y["grid"] and key not in y["fixed"]:
                raise InputError(f"{model}: unknown hyper-parameter '{key}' in '{pid}'")
            point[key] = _parse(value)
    return {**y["fixed"], **point}


def _fmt(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise InputError(f"grid values must be scalars, got {value!r}")
    return str(value)


def _parse(text: str) -> Any:
    """Inverse of :func:`_fmt` for numbers, booleans and plain strings."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
