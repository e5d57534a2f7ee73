"""Workflow configuration: strict loading, schema validation with defaults, cross-field rules.

The Snakefile and the CLI both go through this module. Defaults live in config/schema.yaml
only; after :func:`validate_config` every optional key is present, so code indexes
``config["training"]["epochs"]`` directly. Strict YAML, grid points and params ids are
:mod:`mmknockout.grid` and the sweep design :mod:`mmknockout.sweeps`; the names callers use
(``load_yaml``, ``grid_points``, ``params_id``, ...) are re-exported here.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from .errors import InputError
from .grid import (
    DEFAULT_PARAMS,
    MODEL_DIR,
    ROOT,
    bounded,
    closest_message,
    dotted,
    first_schema_error,
    grid_points,
    load_yaml,
    model_config,
    non_finite,
    params_id,
    parse_params_id,
)
from .knockout import MODALITY_ORDER, Condition, parse_conditions
from .models.registry import MODELS, check_modalities, validate_params
from .sweeps import RESERVED_PREFIX, check_sweep_names, sweep_conditions

__all__ = [
    "DEFAULT_PARAMS",
    "METRICS",
    "MODEL_DIR",
    "SCHEMA",
    "all_conditions",
    "check_config_files",
    "grid_points",
    "load_config",
    "load_yaml",
    "model_config",
    "params_id",
    "parse_params_id",
    "validate_config",
]

SCHEMA = ROOT / "config" / "schema.yaml"
SLICES = ROOT / "config" / "slices"
SLOTS = ("text", "image")
METRICS = ("Recall", "NDCG", "Precision", "MAP", "HitRate")
NAME_RULE = (
    "names start with a letter or digit, use only letters, digits, '_', '.', '+' and '-', "
    "never contain '..', and have at most 100 characters"
)


def _is_int(checker: Any, instance: Any) -> bool:
    """Integers exclude floats such as 999.0 (they would print as '999.0' in paths)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _fill_defaults(validator: Any, properties: Mapping, instance: Any, schema: Mapping) -> Any:
    """The 'properties' keyword, setting each missing property that has a default first."""
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if "default" in sub:
                instance.setdefault(name, copy.deepcopy(sub["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_Base = jsonschema.Draft202012Validator
DefaultFillingValidator = jsonschema.validators.extend(
    _Base, {"properties": _fill_defaults}, type_checker=_Base.TYPE_CHECKER.redefine("integer", _is_int)
)


@functools.cache
def _schema(path: str) -> dict:
    return load_yaml(path)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a config file strictly, validate it and fill in its defaults."""
    config = load_yaml(path)
    if not isinstance(config, dict):
        raise InputError(f"{path}: a config file must be a mapping, got {type(config).__name__}")
    return validate_config(config)


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Re-read config files strictly (duplicate keys, alias bombs), e.g. Snakemake's ``workflow.configfiles``."""
    for path in paths:
        if not isinstance(load_yaml(path), dict):
            raise InputError(f"{path}: a config file must be a mapping")


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA) -> dict[str, Any]:
    """Check ``config`` against the schema and the cross-field rules; fill in defaults in place."""
    if not isinstance(config, dict):
        raise InputError(f"config: must be a mapping, got {type(config).__name__}")
    apply_slices(config)
    bad = non_finite(config)
    if bad is not None:
        raise InputError(f"config field '{dotted(bad)}': NaN and infinite numbers are not allowed")
    err = first_schema_error(DefaultFillingValidator(_schema(str(schema_path))), config)
    if err is not None:
        raise InputError(bounded(f"config field '{dotted(err.path) or '(top level)'}': {_describe(err)}"))
    for check in (
        _check_models,
        _check_conditions,
        _check_datasets,
        _check_encoders,
        _check_feature_sets,
        _check_modalities,
        _check_metrics,
        _check_figures,
        _check_sweeps,
        _check_studies,
    ):
        check(config)
    return config


def _describe(err: jsonschema.ValidationError) -> str:
    if err.validator in ("pattern", "maxLength") and str(err.schema.get("pattern", "")).startswith("^(?!.*[.][.])"):
        return f"name {err.instance!r} not allowed: {NAME_RULE}"
    if err.validator in ("oneOf", "anyOf") and err.context:
        return f"{closest_message(err.context)} (and no other allowed form matches)"
    if err.validator == "type" and err.validator_value == "integer" and isinstance(err.instance, float):
        return f"{err.instance!r} is not an integer (write it without a decimal point)"
    return err.message


def _fail(field: str, rule: str) -> None:
    raise InputError(bounded(f"config field '{field}': {rule}"))


def _check_models(config: Mapping[str, Any]) -> None:
    unknown = [m for m in config["models"] if m not in MODELS]
    if unknown:
        _fail("models", f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    for model in config["models"]:  # every grid point's hyper-parameters, against the model's declared types
        y = model_config(model)
        fixed = y["fixed"]
        try:  # the file's own values, also where a demo grid replaces some of them
            validate_params(model, {**fixed, **{k: v[0] for k, v in y["grid"].items()}})
        except InputError as exc:
            _fail("models", f"config/models/{model}.yaml, field 'fixed': {exc}")
        for point in grid_points(model, config["grid"]):
            try:
                validate_params(model, {**fixed, **point})
            except InputError as exc:
                _fail("models", f"config/models/{model}.yaml, grid point {params_id(point)}: {exc}")


def _check_conditions(config: Mapping[str, Any]) -> None:
    parse_conditions(config["conditions"])
    for name in config["conditions"]:
        if name.startswith(RESERVED_PREFIX):
            _fail(
                f"conditions.{name}", f"names starting with '{RESERVED_PREFIX}' are reserved for the sweeps' conditions"
            )


def _check_datasets(config: Mapping[str, Any]) -> None:
    for ds, spec in config["datasets"].items():
        spec.setdefault("kcore", config["preprocessing"]["kcore"])
        for fs in spec["feature_sets"]:
            if fs not in config["feature_sets"]:
                _fail(f"datasets.{ds}.feature_sets", f"unknown feature set '{fs}'")
        if spec["source"] == "mmrec" and "path" not in spec:
            _fail(f"datasets.{ds}.path", "required for source mmrec")
        if spec["source"] == "registry" and "path" in spec:
            _fail(
                f"datasets.{ds}.path",
                "not used with source registry; to use files you have, give them "
                "'source: local' entries (with a path) in resources/datasets.yaml",
            )


def _check_feature_sets(config: Mapping[str, Any]) -> None:
    for fs, spec in config["feature_sets"].items():
        spec.setdefault("conditions", list(config["conditions"]))
        for name in spec["conditions"]:
            if name not in config["conditions"]:
                _fail(f"feature_sets.{fs}.conditions", f"unknown condition '{name}'")
        for model in spec.get("models", ()):
            if model not in config["models"]:
                _fail(f"feature_sets.{fs}.models", f"'{model}' is not in models")
        for modality in feature_slots(spec):
            if spec[modality] != "provided" and spec[modality] not in config["encoders"][modality]:
                _fail(f"feature_sets.{fs}.{modality}", f"unknown {modality} encoder '{spec[modality]}'")


def feature_slots(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The modalities a feature set fills (one or both), text first."""
    return tuple(m for m in MODALITY_ORDER if m in spec)


def _check_modalities(config: Mapping[str, Any]) -> None:
    """Every model must be able to run on every feature set it meets, under each of the set's conditions."""
    used = {fs for spec in config["datasets"].values() for fs in spec["feature_sets"]}
    for fs in sorted(used):
        slots = feature_slots(config["feature_sets"][fs])
        for model in config["feature_sets"][fs].get("models") or config["models"]:
            check_modalities(model, slots, f"config field 'feature_sets.{fs}' (fills only {', '.join(slots)})")
            for name in config["feature_sets"][fs]["conditions"]:
                absent = Condition.parse(name, config["conditions"][name]).absent
                if absent:
                    kept = [m for m in slots if m not in absent]
                    where = f"config field 'conditions.{name}' ({'/'.join(absent)} absent, feature set '{fs}')"
                    check_modalities(model, kept, where)


def _check_metrics(config: Mapping[str, Any]) -> None:
    topk = config["training"]["topk"]
    for field, metric in (
        ("training.valid_metric", config["training"]["valid_metric"]),
        ("figures.metric", config["figures"]["metric"]),
    ):
        name, _, k = metric.partition("@")
        if name not in METRICS or not k.isdigit() or int(k) not in topk:
            _fail(
                field,
                f"'{metric}' is not computed: use <Metric>@K with Metric in {', '.join(METRICS)} "
                f"and K in training.topk {list(topk)}",
            )


def _check_figures(config: Mapping[str, Any]) -> None:
    shown = config["figures"].setdefault("conditions", list(config["conditions"]))
    for name in shown:
        if name not in config["conditions"]:
            _fail("figures.conditions", f"unknown condition '{name}'")


def _check_sweeps(config: Mapping[str, Any]) -> None:
    sweeps = config.get("sweeps")
    if not sweeps:
        return
    if sweeps["dataset"] not in config["datasets"]:
        _fail("sweeps.dataset", f"unknown dataset '{sweeps['dataset']}'")
    if sweeps["feature_set"] not in config["datasets"][sweeps["dataset"]]["feature_sets"]:
        _fail("sweeps.feature_set", f"'{sweeps['feature_set']}' is not a feature set of dataset '{sweeps['dataset']}'")
    check_sweep_names(sweeps)


def _check_encoders(config: Mapping[str, Any]) -> None:
    """Concat parts exist and form no cycle; input knockouts blank an input the strategy reads."""
    encoders = config["encoders"]
    for slot in SLOTS:
        for name, spec in encoders.get(slot, {}).items():
            field = f"encoders.{slot}.{name}"
            if spec["kind"] == "concat":
                for part in spec["parts"]:
                    part_slot, _, part_name = part.partition("/")
                    if part_name not in encoders.get(part_slot, {}):
                        _fail(f"{field}.parts", f"'{part}' is not a configured {part_slot} encoder")
            if spec["kind"] == "keywords":
                _check_keyword_source(encoders, field, spec["source"])
            if spec["kind"] == "vlm2vec" and "input" in spec:
                unread = {"visual": "text", "textual": "image"}.get(spec["strategy"])
                if unread in spec["input"]:
                    _fail(f"{field}.input.{unread}", f"strategy {spec['strategy']} does not read the {unread}")
            if spec["kind"] == "vlm_caption" and "text" in spec.get("input", {}) and spec["prompt"] != "viral":
                _fail(f"{field}.input.text", f"prompt {spec['prompt']} does not read the item text (no title)")
            if spec["kind"] == "vlm_caption" and spec["text_encoder"] in encoders.get("text", {}):
                model = encoders["text"][spec["text_encoder"]].get("model")
                _fail(
                    f"{field}.text_encoder",
                    f"'{spec['text_encoder']}' is the name of a configured text encoder; give its "
                    f"sentence-transformers model instead ('{model}')",
                )
    for slot in SLOTS:
        for name in encoders.get(slot, {}):
            _concat_order(encoders, f"{slot}/{name}", ())


def _check_keyword_source(encoders: Mapping[str, Any], field: str, source: str) -> None:
    """A keywords encoder reads the generated texts of an lvlm encoder with the fill-in-the-blank prompt."""
    slot, _, name = source.partition("/")
    spec = encoders.get(slot, {}).get(name)
    if spec is None or spec["kind"] != "lvlm":
        _fail(f"{field}.source", f"'{source}' is not a configured lvlm encoder")
    if spec.get("input", {}).get("prompt") == "misaligned":
        _fail(f"{field}.source", f"'{source}' uses the misaligned prompt, which asks for no keywords")


def _concat_order(encoders: Mapping[str, Any], node: str, stack: tuple[str, ...]) -> None:
    """Depth-first walk of concat parts from ``node``; a part met again on the path is a cycle."""
    if node in stack:
        cycle = " -> ".join(stack[stack.index(node) :] + (node,))
        slot, _, name = stack[0].partition("/")
        _fail(f"encoders.{slot}.{name}.parts", f"concat parts form a cycle: {cycle}")
    slot, _, name = node.partition("/")
    spec = encoders[slot][name]
    for part in spec.get("parts", ()) if spec["kind"] == "concat" else ():
        _concat_order(encoders, part, stack + (node,))


def concat_parts(config: Mapping[str, Any], slot: str, name: str) -> list[str]:
    """The ``<slot>/<encoder>`` parts of a concat encoder (``config`` validated)."""
    return list(config["encoders"][slot][name]["parts"])


def _check_studies(config: Mapping[str, Any]) -> None:
    _check_kieu(config)
    _check_pomo(config)
    _check_zhu(config)
    study = (config.get("studies") or {}).get("zhang2025")
    if not study:
        return
    for model in study["models"]:
        if model not in config["models"]:
            _fail("studies.zhang2025.models", f"'{model}' is not in models")
    topk = config["training"]["topk"]
    for metric in study["metrics"]:
        if int(metric.partition("@")[2]) not in topk:
            _fail("studies.zhang2025.metrics", f"'{metric}' is not computed: K must be in training.topk {list(topk)}")
    used = {fs for spec in config["datasets"].values() for fs in spec["feature_sets"]}
    for reading, columns in study["readings"].items():
        for column, fs in columns.items():
            if fs not in used:
                _fail(f"studies.zhang2025.readings.{reading}.{column}", f"'{fs}' is not a feature set of any dataset")


def _check_pomo(config: Mapping[str, Any]) -> None:
    """studies.pomo2025 names configured models, used feature sets and conditions, computed metrics."""
    study = (config.get("studies") or {}).get("pomo2025")
    if not study:
        return
    field = "studies.pomo2025"
    for model in [*study["models"], "ItemKNN", "AttributeItemKNN"]:
        if model not in config["models"]:
            _fail(f"{field}.models" if model in study["models"] else field, f"'{model}' is not in models")
    topk = config["training"]["topk"]
    for metric in study["metrics"]:
        if int(metric.partition("@")[2]) not in topk:
            _fail(f"{field}.metrics", f"'{metric}' is not computed: K must be in training.topk {list(topk)}")
    used = {fs for spec in config["datasets"].values() for fs in spec["feature_sets"]}
    named = [("late_fusion", study["late_fusion"])] + [("keywords", fs) for fs in study["keywords"]]
    named += [("lvlm", fs) for fs in study["lvlm"]] + [("noise", fs) for fs in study["noise"]]
    for key, fs in named:
        if fs not in used:
            _fail(f"{field}.{key}", f"'{fs}' is not a feature set of any dataset")
    for fs, condition in study["noise"].items():
        if condition not in all_conditions(config):
            _fail(f"{field}.noise.{fs}", f"'{condition}' is not a configured condition")


def _check_kieu(config: Mapping[str, Any]) -> None:
    """``studies.kieu2025``: its models configured, its metrics computed, its feature sets run."""
    study = (config.get("studies") or {}).get("kieu2025")
    if not study:
        return
    where = "studies.kieu2025"
    contribution = study["contribution"]
    for field, models in (("models", study["models"]), ("contribution.models", contribution["models"])):
        for model in models:
            if model not in config["models"]:
                _fail(f"{where}.{field}", f"'{model}' is not in models")
    if study["fusion"] and "VIRAL" not in config["models"]:
        _fail(f"{where}.fusion", "the fusion runs are VIRAL's: 'VIRAL' is not in models")
    topk = config["training"]["topk"]
    for field, metrics in (("metrics", study["metrics"]), ("contribution.metrics", contribution["metrics"])):
        for metric in metrics:
            if int(metric.partition("@")[2]) not in topk:
                _fail(f"{where}.{field}", f"'{metric}' is not computed: K must be in training.topk {list(topk)}")
    if study["fusion"]:
        for metric in ("Recall@10", "Recall@20", "NDCG@20"):
            if int(metric.partition("@")[2]) not in topk:
                _fail(f"{where}.fusion", f"Table 2 needs {metric}: K must be in training.topk {list(topk)}")
    used = {fs for spec in config["datasets"].values() for fs in spec["feature_sets"]}
    named = [("viral", study["viral"])] + [(f"table1.{i}", fs) for i, fs in enumerate(study["table1"])]
    named += [(k, study[k]) for k in ("original", "notitle") if k in study]
    named += [(f"contribution.{k}", contribution[k]) for k in ("reference", "vlm")]
    for field, fs in named:
        if fs not in used:
            _fail(f"{where}.{field}", f"'{fs}' is not a feature set of any dataset")
    for cond in contribution["conditions"]:
        if cond not in config["conditions"]:
            _fail(f"{where}.contribution.conditions", f"'{cond}' is not in conditions")
    for ds in study.get("fusion_datasets") or ():
        if ds not in config["datasets"]:
            _fail(f"{where}.fusion_datasets", f"'{ds}' is not a dataset")
        elif study["viral"] not in config["datasets"][ds]["feature_sets"]:
            _fail(f"{where}.fusion_datasets", f"dataset '{ds}' does not run feature set '{study['viral']}'")


def _check_zhu(config: Mapping[str, Any]) -> None:
    """``studies.zhu2025``: a text + image feature set run on its datasets, conditions without 'absent',
    its metrics computed."""
    study = (config.get("studies") or {}).get("zhu2025")
    if not study:
        return
    where, fs = "studies.zhu2025", study["feature_set"]
    spec = config["feature_sets"].get(fs)
    if spec is None or not (spec.get("text") and spec.get("image")):
        _fail(f"{where}.feature_set", f"'{fs}' must be a feature set with a text and an image encoder")
    for ds in study.get("datasets") or ():
        if ds not in config["datasets"]:
            _fail(f"{where}.datasets", f"'{ds}' is not a dataset")
        elif fs not in config["datasets"][ds]["feature_sets"]:
            _fail(f"{where}.datasets", f"dataset '{ds}' does not run feature set '{fs}'")
    if not any(fs in d["feature_sets"] for d in config["datasets"].values()):
        _fail(f"{where}.feature_set", f"'{fs}' is not a feature set of any dataset")
    for cond in study.get("conditions") or ():
        if cond not in config["conditions"]:
            _fail(f"{where}.conditions", f"'{cond}' is not in conditions")
    for cond in study.get("conditions") or config["conditions"]:
        if any(_kind(r) == "absent" for r in (config["conditions"][cond] or {}).values()):
            _fail(f"{where}.conditions", f"'{cond}' drops a modality ('absent'): semantic IDs need both")
    if int(study["valid_metric"].partition("@")[2]) not in study["topk"]:
        _fail(f"{where}.valid_metric", f"K must be in {where}.topk {list(study['topk'])}")
    if study["seq2seq"]["mode"] == "pretrained" and not study["seq2seq"].get("model"):
        _fail(f"{where}.seq2seq.model", "mode pretrained needs the T5 to load (a directory or hub name)")
    if study["seq2seq"]["beams"] < max(study["topk"]):
        _fail(f"{where}.seq2seq.beams", f"must be at least the largest K of topk ({max(study['topk'])})")
    for model in study.get("ranking_models") or ():
        if model not in config["models"]:
            _fail(f"{where}.ranking_models", f"'{model}' is not in models")


def _kind(replacement: Any) -> str | None:
    """The knockout kind of a condition's replacement (a shorthand or a mapping with 'kind')."""
    return replacement.get("kind") if isinstance(replacement, Mapping) else replacement


def apply_slices(config: dict[str, Any], directory: str | Path = SLICES) -> dict[str, Any]:
    """Merge ``config/slices/<name>.yaml`` for every name in ``slices`` into ``config`` (in place).

    Mappings merge key by key, lists are joined (each item once, in order), a scalar set to two
    different values is an error naming the field. Merging twice changes nothing."""
    names = config.get("slices") or []
    if not isinstance(names, list):
        raise InputError("config field 'slices': must be a list of slice names")
    for name in names:
        path = Path(directory) / f"{name}.yaml"
        if not isinstance(name, str) or "/" in name or not path.is_file():
            raise InputError(f"config field 'slices': no slice file {path}")
        piece = load_yaml(path)
        if not isinstance(piece, dict) or "slices" in piece:
            raise InputError(f"{path}: a slice must be a mapping without its own 'slices'")
        _merge(config, piece, ())
    return config


def _merge(into: dict[str, Any], piece: Mapping[str, Any], where: tuple[str, ...]) -> None:
    for key, value in piece.items():
        field = dotted(where + (key,))
        if key not in into:
            into[key] = copy.deepcopy(value)
        elif isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value, where + (key,))
        elif isinstance(into[key], list) and isinstance(value, list):
            into[key].extend(copy.deepcopy(v) for v in value if v not in into[key])
        elif into[key] != value:
            raise InputError(bounded(f"config field '{field}': a slice sets {value!r}, the config {into[key]!r}"))


def all_conditions(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configured conditions plus those the VBPR sweeps add (``config`` validated)."""
    return {**config["conditions"], **sweep_conditions(config.get("sweeps") or {})}
