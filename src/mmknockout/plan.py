"""What a config asks the workflow for: every run, every grid-point selection, every table and figure.

The rule files read their target lists and input lists from a :class:`StudyPlan`; every file name
comes from :mod:`mmknockout.paths`. Nothing here reads results: the plan depends on the config and
the reference index (``resources/reference/tables.csv``) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import config as cfg
from . import paths
from .analysis.sweeps import SweepRun, sweep_runs
from .analysis.tables import main_feature_set
from .genrec.plan import ZhuPlan


class StudyPlan:
    """The jobs and outputs of one validated config.

    * ``feature_sets``: dataset -> its feature sets, the main one first;
    * ``appendix``: Appendix table number -> name (a knockout condition run on some dataset's main
      feature set, Tables 4-9, or a further feature set such as ``vit``, Table 10);
    * ``embeddings``: (dataset, feature set) pairs for Fig. 3, two-slot feature sets only (none if every
      model is feature-free);
    * ``sweeps``: the VBPR case-study runs;
    * ``zhang``: the ``studies.zhang2025`` settings (Zhang 2025, Table 2), or None;
    * ``kieu``: the ``studies.kieu2025`` settings (Kieu et al. 2025, VIRAL: Tables 1 and 2, the
      modality contributions), or None;
    * ``zhu``: the jobs of ``studies.zhu2025`` (Zhu et al. 2025, generative recommendation), or None.
    """

    def __init__(self, config: Mapping[str, Any], reference_index: str | Path = paths.REFERENCE_INDEX) -> None:
        from .models.registry import FEATURE_FREE

        self.config = config
        self.feature_sets = {}
        for ds, spec in config["datasets"].items():
            main = main_feature_set(list(spec["feature_sets"]))
            self.feature_sets[ds] = [main] + [f for f in spec["feature_sets"] if f != main]
        self.main = {ds: fss[0] for ds, fss in self.feature_sets.items()}
        index = pd.read_csv(reference_index)
        conditions = {c for fs in self.main.values() for c in self.conditions_of(fs)}
        extra = {f for fss in self.feature_sets.values() for f in fss[1:]}
        self.appendix = {
            int(t): str(n)
            for t, n in zip(index["table"], index["condition"], strict=True)
            if n in conditions or n in extra
        }
        self.titles = {int(t): str(x) for t, x in zip(index["table"], index["title"], strict=True)}
        features_used = any(m not in FEATURE_FREE for m in config["models"])
        both = {fs for fs, spec in config["feature_sets"].items() if "text" in spec and "image" in spec}
        self.embeddings = (
            [(ds, fs) for ds, fss in self.feature_sets.items() for fs in fss if fs in both] if features_used else []
        )
        #: Zhang (2025): the study's settings, or None when the config has no ``studies.zhang2025``
        self.zhang = (config.get("studies") or {}).get("zhang2025")
        #: Kieu et al. (2025): the study's settings, or None when the config has no ``studies.kieu2025``
        self.kieu = (config.get("studies") or {}).get("kieu2025")
        #: Pomo et al. (2025): the study's settings, or None when the config has no ``studies.pomo2025``
        self.pomo = (config.get("studies") or {}).get("pomo2025")
        #: Zhu et al. (2025), generative recommendation: its jobs, or None without ``studies.zhu2025``
        self.zhu = ZhuPlan(config) if (config.get("studies") or {}).get("zhu2025") else None
        self.sweeps: list[SweepRun] = sweep_runs(config.get("sweeps") or {})
        #: the conditions of the knockout figure: ``figures.conditions``, by default every condition
        self.figure_conditions = list(config["figures"].get("conditions") or config["conditions"])

    # ------------------------------------------------------------------ runs
    def conditions_of(self, feature_set: str) -> list[str]:
        """The conditions a feature set runs (its own list, else every configured condition)."""
        return list(self.config["feature_sets"][feature_set].get("conditions") or self.config["conditions"])

    def models_of(self, feature_set: str) -> list[str]:
        """The models a feature set runs (its own list, else every configured model), in config order."""
        chosen = self.config["feature_sets"][feature_set].get("models") or self.config["models"]
        return [m for m in self.config["models"] if m in chosen]

    def grid(self, model: str) -> list[str]:
        """The params ids of a model's grid points under the config's ``grid``."""
        return [cfg.params_id(p) for p in cfg.grid_points(model, self.config["grid"])]

    def run_files(self, pattern: str, **selection_key: Any) -> list[str]:
        """``pattern`` (METRICS, PER_USER, ...) for every grid point of one selection key."""
        return [paths.fill(pattern, params=pid, **selection_key) for pid in self.grid(selection_key["model"])]

    def selection_keys(self) -> list[dict[str, Any]]:
        """Every (dataset, feature set, model, condition, seed) whose grid points are compared."""
        return [
            {"dataset": ds, "feature_set": fs, "model": model, "condition": cond, "seed": seed}
            for ds, spec in self.config["datasets"].items()
            for fs in spec["feature_sets"]
            for model in self.models_of(fs)
            for cond in self.conditions_of(fs)
            for seed in self.config["seeds"]
        ]

    def selected_runs(self) -> list[str]:
        return [paths.fill(paths.SELECTED, **key) for key in self.selection_keys()]

    def selected_per_user(self) -> list[str]:
        """The per-user test metrics of every grid point behind the selected runs."""
        return [f for key in self.selection_keys() for f in self.run_files(paths.PER_USER, **key)]

    def sweep_records(self) -> list[str]:
        sweeps = self.config.get("sweeps")
        if not sweeps:
            return []
        return [
            paths.fill(
                paths.METRICS,
                dataset=sweeps["dataset"],
                feature_set=sweeps["feature_set"],
                model=r.model,
                condition=r.condition,
                params=r.params,
                seed=seed,
            )
            for seed in self.config["seeds"]
            for r in self.sweeps
        ]

    # ------------------------------------------------------------------ outputs
    def appendix_tables(self, kind: str = "csv") -> list[str]:
        pattern = paths.APPENDIX if kind == "csv" else paths.APPENDIX_TEX
        return [paths.fill(pattern, table=t, name=self.appendix[t]) for t in sorted(self.appendix)]

    def published_tables(self) -> list[str]:
        return [paths.fill(paths.REFERENCE_TABLE, table=t, name=self.appendix[t]) for t in sorted(self.appendix)]

    def zhang_readings(self) -> list[str]:
        """The readings of Zhang (2025) the config defines (one table each)."""
        return list(self.zhang["readings"]) if self.zhang else []

    def zhang_targets(self) -> list[str]:
        """Zhang (2025): Table 2 per reading, ours vs published with the claims, and the figure."""
        tables = [paths.fill(paths.ZHANG_TABLE, reading=r) for r in self.zhang_readings()]
        return tables + [paths.ZHANG_COMPARISON, paths.ZHANG_CLAIMS, paths.ZHANG_FIGURE]

    def kieu_fusion_records(self) -> list[str]:
        """Kieu et al. (2025), Table 2's fusion rows: metrics.json of VIRAL on the study's ``viral``
        feature set, baseline, every grid point with ``fusion`` set to each ablation value, every seed."""
        if not self.kieu or not self.kieu["fusion"]:
            return []
        fs = self.kieu["viral"]
        datasets = self.kieu.get("fusion_datasets") or [
            ds for ds, spec in self.config["datasets"].items() if fs in spec["feature_sets"]
        ]
        points = cfg.grid_points("VIRAL", self.config["grid"])
        return [
            paths.fill(
                paths.METRICS,
                dataset=ds,
                feature_set=fs,
                model="VIRAL",
                condition="baseline",
                params=cfg.params_id({**point, "fusion": fusion}),
                seed=seed,
            )
            for ds in datasets
            for fusion in self.kieu["fusion"]
            for point in points
            for seed in self.config["seeds"]
        ]

    def kieu_targets(self) -> list[str]:
        """Kieu et al. (2025): Tables 1 and 2 ours vs published, the modality contributions with claims, the figure."""
        if not self.kieu:
            return []
        return [paths.KIEU_TABLE1, paths.KIEU_TABLE2, paths.KIEU_CONTRIBUTION, paths.KIEU_CLAIMS, paths.KIEU_FIGURE]

    def targets(self) -> list[str]:
        """Every final output of the config, in a stable order."""
        out = [paths.KNOCKOUT_TABLE, paths.KNOCKOUT_FIGURE]
        out += [paths.fill(paths.STATS, dataset=ds) for ds in self.config["datasets"]]
        if self.sweeps:
            out += [paths.SWEEP_TABLE, paths.FIG4]
        out += [
            paths.SIGNIFICANCE,
            paths.TABLE2,
            paths.TABLE2_TEX,
            paths.TABLE3,
            paths.TABLE3_TEX,
            paths.ENCODER_SWAP,
            paths.OURS_VS_PUBLISHED,
            paths.OURS_VS_PUBLISHED_FIGURE,
            paths.FIG2,
            paths.RUNTIME,
        ]
        out += [paths.fill(paths.FIG1, dataset=ds) for ds in self.feature_sets]
        for csv, tex in zip(self.appendix_tables("csv"), self.appendix_tables("tex"), strict=True):
            out += [csv, tex]
        if self.zhang:
            out += self.zhang_targets()
        out += self.kieu_targets()
        if self.pomo:
            out += [paths.POMO_RESULTS, paths.POMO_CASES, paths.POMO_CLAIMS]
        out += self.zhu.targets() if self.zhu else []
        for ds, fs in self.embeddings:
            out += [
                paths.fill(paths.FIG3, dataset=ds, feature_set=fs),
                paths.fill(paths.EMBEDDING_STATS, dataset=ds, feature_set=fs),
            ]
        return out
