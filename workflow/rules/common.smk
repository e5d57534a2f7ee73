"""Config validation, target lists and input functions shared by every rule file."""

import json
import re

from mmknockout.cli import run_spec

from mmknockout.analysis.sweeps import sweep_runs

from mmknockout import config as cfg
from mmknockout import paths
from mmknockout.errors import InputError
from mmknockout.models.registry import FEATURE_FREE, REQUIRES

try:
    cfg.validate_config(config)
except InputError as exc:
    raise WorkflowError(str(exc)) from None

REGISTRY_FILE = "resources/datasets.yaml"
REGISTRY = cfg.load_yaml(REGISTRY_FILE)["datasets"]
NEVER = "(?!x)x"  # a regex that matches nothing


def datasets_of(source):
    return [d for d, spec in config["datasets"].items() if spec["source"] == source]


for _ds in datasets_of("registry"):
    if _ds not in REGISTRY:
        raise WorkflowError(
            f"config field 'datasets.{_ds}': not in resources/datasets.yaml (known: {', '.join(sorted(REGISTRY))}); "
            "use source: mmrec with a path for your own data"
        )


def pattern_of(names):
    return "|".join(names) if names else NEVER


CONDITIONS = cfg.all_conditions(config)
SWEEPS = config.get("sweeps") or {}
SWEEP_RUNS = sweep_runs(SWEEPS)


wildcard_constraints:
    dataset=pattern_of(list(config["datasets"])),
    seed=r"\d+",
    condition=pattern_of([re.escape(c) for c in CONDITIONS]),


def text_encoder(wildcards):
    return config["encoders"]["text"][wildcards.encoder]


def image_encoder(wildcards):
    return config["encoders"]["image"][wildcards.encoder]


def uses_gpu(wildcards):
    """1 when the config asks for a CUDA device, so schedulers reserve the GPU; 0 on CPU configs."""
    return 1 if str(config["training"].get("device", "cpu")).startswith("cuda") else 0


def raw_entry(dataset, role):
    files = REGISTRY[dataset]["files"]
    if role not in files:
        raise WorkflowError(f"resources/datasets.yaml: dataset '{dataset}' lists no '{role}' file")
    return files[role]


def raw_path(dataset, role):
    return paths.fill(paths.RAW, dataset=dataset, file=raw_entry(dataset, role)["file"])


def raw_role(wildcards):
    """The registry role (ratings, metadata, image_features) of a raw file name."""
    for role, entry in REGISTRY[wildcards.dataset]["files"].items():
        if entry["file"] == wildcards.file:
            return role
    raise WorkflowError(f"resources/datasets.yaml: dataset '{wildcards.dataset}' has no file named '{wildcards.file}'")


def feature_set(ds_fs):
    return config["feature_sets"][ds_fs]


def feature_paths(dataset, fs):
    spec = feature_set(fs)
    return {
        "text": paths.fill(paths.TEXT_FEATURES, dataset=dataset, encoder=spec["text"]),
        "image": paths.fill(paths.IMAGE_FEATURES, dataset=dataset, encoder=spec["image"]),
    }


def train_inputs(wildcards):
    """The split, the features (unless the model reads none) and the graphs the model needs."""
    inputs = {"inter": paths.fill(paths.INTER, dataset=wildcards.dataset)}
    if wildcards.model not in FEATURE_FREE:
        inputs.update(feature_paths(wildcards.dataset, wildcards.feature_set))
    for graph in REQUIRES.get(wildcards.model, ()):
        inputs[graph] = paths.fill(paths.USER_GRAPH if graph == "user_graph" else paths.ITEM_GRAPH, dataset=wildcards.dataset)
    return inputs


def run_spec_json(wildcards):
    """Everything the training job needs, as JSON: a changed value re-runs exactly the affected jobs."""
    spec = run_spec(config, wildcards.model, wildcards.params, wildcards.condition, wildcards.feature_set,
                    int(wildcards.seed))
    return json.dumps(spec, sort_keys=True)


def select_grid_point(records, out, metric, selection):
    from mmknockout.analysis.selection import read_json, select
    from mmknockout.io import write_json

    write_json(out, select([read_json(p) for p in records], metric, selection))


def grid(model):
    return [cfg.params_id(p) for p in cfg.grid_points(model, config["grid"])]


def run_records(wildcards):
    """metrics.json of every grid point of one (dataset, feature set, model, condition, seed)."""
    return [
        paths.fill(paths.METRICS, params=pid, **{k: getattr(wildcards, k) for k in
                   ("dataset", "feature_set", "model", "condition", "seed")})
        for pid in grid(wildcards.model)
    ]


def selected_runs(datasets=None, models=None, conditions=None):
    out = []
    for ds in datasets or config["datasets"]:
        for fs in config["datasets"][ds]["feature_sets"]:
            for model in models or config["models"]:
                for cond in conditions or feature_set(fs).get("conditions", config["conditions"]):
                    for seed in config["seeds"]:
                        out.append(paths.fill(paths.SELECTED, dataset=ds, feature_set=fs, model=model,
                                              condition=cond, seed=seed))
    return out


def sweep_records():
    if not SWEEPS:
        return []
    fs = SWEEPS.get("feature_set", "default")
    return [
        paths.fill(paths.METRICS, dataset=SWEEPS["dataset"], feature_set=fs, model=r.model, condition=r.condition,
                   params=r.params, seed=seed)
        for seed in config["seeds"] for r in SWEEP_RUNS
    ]


def all_targets():
    targets = [
        f"{paths.TABLES}/knockout.csv",
        f"{paths.FIGURES}/knockout_change.png",
    ] + [paths.fill(paths.STATS, dataset=ds) for ds in config["datasets"]]
    if SWEEPS:
        targets += [f"{paths.TABLES}/vbpr_sweeps.csv", f"{paths.FIGURES}/fig4_vbpr_sweeps.png"]
    return targets + report_targets()  # report_targets: workflow/rules/report.smk
