"""Config validation, the study plan and the input functions shared by every rule file.

Rules run package code through ``workflow/scripts/step.py``: a rule's named inputs, outputs and
params are the keyword arguments of its entry function (``mmknockout.workflow.STEPS``); unnamed
inputs only order jobs. Every file name comes from ``mmknockout.paths``.
"""

import re

from snakemake.utils import validate

from mmknockout import config as cfg
from mmknockout import paths
from mmknockout.data.download import load_registry
from mmknockout.errors import InputError
from mmknockout.io import remove_stale_temporaries
from mmknockout.models.registry import REQUIRES, FEATURE_FREE
from mmknockout.plan import StudyPlan
from mmknockout.spec import feature_files, run_spec

try:
    cfg.check_config_files(workflow.configfiles)  # duplicate keys, alias bombs
    cfg.validate_config(config)  # schema (its defaults filled in) and the rules across fields
    validate(config, workflow.source_path("../../config/schema.yaml"))  # Snakemake's own record of the check
    REGISTRY_FILE = "resources/datasets.yaml"
    REGISTRY = load_registry(REGISTRY_FILE)["datasets"]
    PLAN = StudyPlan(config)
except InputError as exc:
    raise WorkflowError(str(exc)) from None

STEP = "../scripts/step.py"
NEVER = "(?!x)x"  # a regex that matches nothing


def datasets_of(source):
    return [d for d, spec in config["datasets"].items() if spec["source"] == source]


for _ds in datasets_of("registry"):
    if _ds not in REGISTRY:
        raise WorkflowError(
            f"config field 'datasets.{_ds}': not in {REGISTRY_FILE} (known: {', '.join(sorted(REGISTRY))}); "
            "use source: mmrec with a path for your own data"
        )


def pattern_of(names):
    """A wildcard constraint matching exactly ``names``."""
    return "|".join(re.escape(n) for n in names) if names else NEVER


wildcard_constraints:
    dataset=pattern_of(config["datasets"]),
    feature_set=pattern_of(config["feature_sets"]),
    model=pattern_of(config["models"]),
    condition=pattern_of(cfg.all_conditions(config)),
    seed=r"\d+",


onstart:
    for _tmp in remove_stale_temporaries(paths.RESULTS):
        print(f"removed a temporary file left by an interrupted job: {_tmp}")


def uses_gpu(wildcards):
    """1 when the config asks for a CUDA device, so schedulers reserve the GPU; 0 on CPU configs."""
    return 1 if config["training"]["device"].startswith("cuda") else 0


def text_encoder(wildcards):
    return config["encoders"]["text"][wildcards.encoder]


def image_encoder(wildcards):
    return config["encoders"]["image"][wildcards.encoder]


VL_KINDS = ("clip", "vlm2vec", "lvlm", "vlm_caption")


def encoders_of(slot, kinds):
    """The names of the ``slot`` encoders of the given kinds."""
    return [e for e, s in config["encoders"][slot].items() if s["kind"] in kinds]


def reads_images(spec):
    """Whether a vision-language encoder reads the item images (then download_images runs first)."""
    if spec["kind"] == "clip":
        return spec["tower"] == "image"
    return spec["kind"] == "lvlm" or spec.get("strategy") != "textual"


def tiny_checkpoints_of(slot):
    """Input function: the tiny demo models an encoder loads (built by rule tiny_models), unnamed."""

    def inputs(wildcards):
        spec = config["encoders"][slot][wildcards.encoder]
        names = (spec.get("model"), spec.get("adapter"))
        return [n for n in names if n and n.startswith(f"{paths.TINY_MODELS}/")]

    return inputs


def vl_inputs(slot):
    """Input function of vl_<slot>_features: the item records, the images if read, tiny models."""

    def inputs(wildcards):
        spec = config["encoders"][slot][wildcards.encoder]
        named = {
            "metadata": raw_path(wildcards.dataset, "metadata"),
            "item_map": paths.fill(paths.ITEM_MAP, dataset=wildcards.dataset),
        }
        if reads_images(spec):
            named["images_index"] = paths.fill(paths.IMAGES_INDEX, dataset=wildcards.dataset)
        return named

    return inputs


CONCAT = {
    f"{slot}_{name}": (slot, name) for slot in ("text", "image") for name in encoders_of(slot, ["concat"])
}  # "<slot>_<encoder>" (a path part) -> slot and concat encoder


def concat_inputs(wildcards):
    """The parts' feature files of a concat encoder, in its order."""
    slot, name = CONCAT[wildcards.slot_encoder]
    pattern = {"text": paths.TEXT_FEATURES, "image": paths.IMAGE_FEATURES}
    return [
        paths.fill(pattern[part_slot], dataset=wildcards.dataset, encoder=part)
        for part_slot, _, part in (p.partition("/") for p in cfg.concat_parts(config, slot, name))
    ]


def keyword_source(wildcards):
    """The sidecar (with the generated texts) of a keywords encoder's lvlm source."""
    slot, _, name = config["encoders"]["text"][wildcards.encoder]["source"].partition("/")
    sidecar = {"text": paths.TEXT_SIDECAR, "image": paths.IMAGE_SIDECAR}[slot]
    return paths.fill(sidecar, dataset=wildcards.dataset, encoder=name)


def raw_entry(dataset, role):
    files = REGISTRY[dataset]["files"]
    if role not in files:
        raise WorkflowError(f"{REGISTRY_FILE}: dataset '{dataset}' lists no '{role}' file")
    return files[role]


def raw_path(dataset, role):
    return paths.fill(paths.RAW, dataset=dataset, file=raw_entry(dataset, role)["file"])


def raw_file_entry(wildcards):
    """The registry entry of a raw file name."""
    for entry in REGISTRY[wildcards.dataset]["files"].values():
        if entry["file"] == wildcards.file:
            return entry
    raise WorkflowError(f"{REGISTRY_FILE}: dataset '{wildcards.dataset}' has no file named '{wildcards.file}'")


def feature_paths(dataset, feature_set):
    """The feature file of each slot the feature set fills (one or both)."""
    return feature_files(dataset, config["feature_sets"][feature_set])


def item_count_input(wildcards):
    """stats.json, whose item count includes items without interactions, for an MMRec folder; a
    registry split's item ids are contiguous (no input, so existing runs are not redone)."""
    if config["datasets"][wildcards.dataset]["source"] != "mmrec":
        return {}
    return {"stats": paths.fill(paths.STATS, dataset=wildcards.dataset)}


def train_inputs(wildcards):
    """The split, the features of the filled slots (unless the model reads none) and the graphs the model needs."""
    inputs = {"inter": paths.fill(paths.INTER, dataset=wildcards.dataset), **item_count_input(wildcards)}
    if wildcards.model not in FEATURE_FREE:
        inputs.update(feature_paths(wildcards.dataset, wildcards.feature_set))
    graph_files = {"user_graph": paths.USER_GRAPH, "item_graph": paths.ITEM_GRAPH}
    for graph in REQUIRES.get(wildcards.model, ()):
        inputs[graph] = paths.fill(graph_files[graph], dataset=wildcards.dataset)
    return inputs


def train_spec(wildcards):
    """Everything the run needs: a changed value re-runs exactly the affected jobs."""
    return run_spec(
        config,
        dataset=wildcards.dataset,
        feature_set=wildcards.feature_set,
        model=wildcards.model,
        condition=wildcards.condition,
        params_id=wildcards.params,
        seed=int(wildcards.seed),
    ).to_dict()


def run_records(wildcards):
    """metrics.json of every grid point of one (dataset, feature set, model, condition, seed)."""
    return PLAN.run_files(
        paths.METRICS, **{k: getattr(wildcards, k) for k in ("dataset", "feature_set", "model", "condition", "seed")}
    )


# Zhu et al. (2025), generative recommendation (workflow/rules/zhu.smk)
def zhu_metadata(wildcards):
    """The registry metadata (image filter, categories) of a registry dataset, nothing otherwise."""
    if config["datasets"][wildcards.dataset]["source"] != "registry":
        return {}
    return {
        "metadata": raw_path(wildcards.dataset, "metadata"),
        "item_map": paths.fill(paths.ITEM_MAP, dataset=wildcards.dataset),
    }


def seq_split_inputs(wildcards):
    """The main split, and the metadata when items without an image are removed first."""
    inputs = {"inter": paths.fill(paths.INTER, dataset=wildcards.dataset)}
    if PLAN.zhu and PLAN.zhu.study["remove_without_image"]:
        inputs.update(zhu_metadata(wildcards))
    return inputs


def sid_inputs(wildcards):
    """The feature set's text and image features (and the metadata for the category AMI)."""
    return {**feature_paths(wildcards.dataset, wildcards.feature_set), **zhu_metadata(wildcards)}


def genrec_inputs(wildcards):
    """The leave-one-out split and the semantic IDs of each code block of the variant."""
    return {
        "seq_inter": paths.fill(paths.SEQ_INTER, dataset=wildcards.dataset),
        **PLAN.zhu.codes_of(wildcards.dataset, wildcards.variant, wildcards.condition, wildcards.seed),
    }
