"""The jobs of ``studies.zhu2025`` (generative recommendation): semantic IDs, runs and outputs.

For every dataset, condition and seed: one RQ-VAE per code block the variants use (text, image,
fused); for every variant and learning rate of the grid on top: one run. A condition that leaves the
modalities of a kind (or of a variant's kinds) untouched runs no job of its own: its result is the
baseline's (:meth:`ZhuPlan.source_condition`). File names come from :mod:`mmknockout.paths`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import paths
from ..grid import params_id
from .tokens import VARIANTS


class ZhuPlan:
    """The semantic IDs, runs and outputs of a validated config's ``studies.zhu2025``."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.study = config["studies"]["zhu2025"]
        self.feature_set = self.study["feature_set"]
        self.datasets = list(self.study.get("datasets") or []) or [
            ds for ds, spec in config["datasets"].items() if self.feature_set in spec["feature_sets"]
        ]
        self.conditions = list(self.study.get("conditions") or config["conditions"])
        self.variants = list(self.study["variants"])
        self.sid_kinds = [k for k in ("text", "image", "fused") if any(k in VARIANTS[v][0] for v in self.variants)]
        self.params = {params_id({"learning_rate": lr}): lr for lr in self.study["learning_rate"]}
        self.seeds = list(config["seeds"])
        self.ranking_models = list(self.study.get("ranking_models") or config["models"])

    def source_condition(self, kinds: tuple[str, ...] | list[str], condition: str) -> str:
        """The condition whose job gives the result of ``condition`` for codes of ``kinds``: the baseline
        when the condition replaces none of the modalities they are built from (text-noise leaves image
        IDs, and the runs on them alone, exactly as they are), else the condition itself."""
        used = {m for k in kinds for m in (("text", "image") if k == "fused" else (k,))}
        spec = self.config["conditions"][condition] or {}
        return "baseline" if "baseline" in self.conditions and not used & set(spec) else condition

    def sid_keys(self) -> list[dict[str, Any]]:
        """Every (dataset, kind, condition, seed) of the semantic-ID tables."""
        return [
            {"dataset": ds, "feature_set": self.feature_set, "sid_kind": k, "condition": c, "seed": s}
            for ds in self.datasets
            for k in self.sid_kinds
            for c in self.conditions
            for s in self.seeds
        ]

    def sid_files(self, pattern: str = paths.SID_STATS) -> list[str]:
        """The file behind each of :meth:`sid_keys` (the source condition's: names repeat)."""
        return [
            paths.fill(pattern, **{**k, "condition": self.source_condition([k["sid_kind"]], k["condition"])})
            for k in self.sid_keys()
        ]

    def run_keys(self) -> list[dict[str, Any]]:
        """Every (dataset, variant, condition, learning rate, seed) of the tables."""
        return [
            {"dataset": ds, "feature_set": self.feature_set, "variant": v, "condition": c, "params": p, "seed": s}
            for ds in self.datasets
            for v in self.variants
            for c in self.conditions
            for p in self.params
            for s in self.seeds
        ]

    def run_files(self, pattern: str = paths.GEN_METRICS) -> list[str]:
        """The file behind each of :meth:`run_keys` (the source condition's: names repeat)."""
        return [
            paths.fill(pattern, **{**k, "condition": self.source_condition(VARIANTS[k["variant"]][0], k["condition"])})
            for k in self.run_keys()
        ]

    def codes_of(self, dataset: str, variant: str, condition: str, seed: int | str) -> dict[str, str]:
        """``<kind>_codes`` -> the codes file of each block of ``variant`` under ``condition``."""
        return {
            f"{kind}_codes": paths.fill(
                paths.SID_CODES,
                dataset=dataset,
                feature_set=self.feature_set,
                sid_kind=kind,
                condition=self.source_condition([kind], condition),
                seed=seed,
            )
            for kind in VARIANTS[variant][0]
        }

    def run_spec(self, dataset: str, variant: str, condition: str, params: str, seed: int | str) -> dict[str, Any]:
        """Everything one run reads besides its input files (a changed value re-runs it)."""
        return {
            "dataset": dataset,
            "feature_set": self.feature_set,
            "variant": variant,
            "condition": condition,
            "params_id": params,
            "params": {"learning_rate": self.params[params]},
            "seed": int(seed),
            "device": self.config["training"]["device"],
            "seq2seq": self.seq2seq(dataset),
            "codebook_size": self.study["rqvae"]["codebook_size"],
            "sasrec": dict(self.study["sasrec"]),
            "topk": list(self.study["topk"]),
            "valid_metric": self.study["valid_metric"],
        }

    def seq2seq(self, dataset: str) -> dict[str, Any]:
        """The seq2seq settings of a dataset: ``steps`` from ``steps_by_dataset`` where given."""
        settings = dict(self.study["seq2seq"])
        by_dataset = settings.pop("steps_by_dataset")
        settings["steps"] = by_dataset.get(dataset, settings["steps"])
        return settings

    def targets(self) -> list[str]:
        return [
            paths.ZHU_TABLE,
            paths.ZHU_COMPARISON,
            paths.ZHU_ORDERINGS,
            paths.ZHU_SID_TABLE,
            paths.ZHU_AMI,
            paths.ZHU_OVERLAP,
            paths.ZHU_PARTS,
            paths.ZHU_KNOCKOUT,
            paths.ZHU_COLLAPSE_FIGURE,
            paths.ZHU_AMI_FIGURE,
            paths.ZHU_KNOCKOUT_FIGURE,
        ]
