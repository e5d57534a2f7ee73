"""The complete description of one training run, built from a validated config.

A :class:`RunSpec` is what the ``train`` rule hands to :func:`mmknockout.run.train_step` (as its
``spec`` parameter, so a changed value re-runs exactly the affected jobs) and what
``python -m mmknockout train`` builds for a run started by hand. Input and output files follow
from it through :mod:`mmknockout.paths`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from . import paths
from .errors import InputError
from .models.registry import validate_params


@dataclass(frozen=True)
class RunSpec:
    """One (dataset, feature set, model, condition, grid point, seed) and its settings."""

    dataset: str
    feature_set: str
    text_encoder: str | None  # None: the feature set fills no text slot
    image_encoder: str | None
    model: str
    params_id: str
    params: dict[str, Any]
    condition: str
    condition_spec: dict[str, Any]
    seed: int
    training: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSpec:
        return cls(**values)

    @property
    def wildcards(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "feature_set": self.feature_set,
            "model": self.model,
            "condition": self.condition,
            "params": self.params_id,
            "seed": self.seed,
        }

    def feature_files(self) -> dict[str, str]:
        """The feature file of every slot the feature set fills (one or both)."""
        return feature_files(self.dataset, {"text": self.text_encoder, "image": self.image_encoder})


def feature_files(dataset: str, encoders: Mapping[str, str | None]) -> dict[str, str]:
    """Feature file per filled slot; ``encoders`` (e.g. a feature set's config) maps a modality to its
    encoder, None or nothing for an empty slot; other keys are ignored."""
    pattern = {"text": paths.TEXT_FEATURES, "image": paths.IMAGE_FEATURES}
    return {m: paths.fill(p, dataset=dataset, encoder=encoders[m]) for m, p in pattern.items() if encoders.get(m)}


def run_spec(
    config: Mapping[str, Any],
    *,
    dataset: str,
    feature_set: str,
    model: str,
    condition: str,
    params_id: str,
    seed: int,
) -> RunSpec:
    """The run of a validated config; unknown names are input errors that list the known ones."""
    from . import config as cfg  # here, not at the top: a training job reads no config (jsonschema, yaml)

    _known("dataset", dataset, config["datasets"])
    _known("feature set", feature_set, config["datasets"][dataset]["feature_sets"])
    conditions = cfg.all_conditions(config)
    _known("condition", condition, conditions)
    fs = config["feature_sets"][feature_set]
    params = cfg.parse_params_id(model, params_id)
    validate_params(model, params)
    return RunSpec(
        dataset=dataset,
        feature_set=feature_set,
        text_encoder=fs.get("text"),
        image_encoder=fs.get("image"),
        model=model,
        params_id=params_id,
        params=params,
        condition=condition,
        condition_spec=dict(conditions[condition]),
        seed=int(seed),
        training=dict(config["training"]),
    )


def first_run(
    config: Mapping[str, Any],
    dataset: str,
    model: str,
    condition: str = "baseline",
    feature_set: str | None = None,
    params_id: str | None = None,
    seed: int | None = None,
) -> RunSpec:
    """A run started by hand: defaults are the dataset's first feature set, the model's first grid
    point and the config's first seed."""
    from . import config as cfg

    _known("dataset", dataset, config["datasets"])
    if params_id is None:
        params_id = cfg.params_id(cfg.grid_points(model, config["grid"])[0])
    return run_spec(
        config,
        dataset=dataset,
        feature_set=feature_set or config["datasets"][dataset]["feature_sets"][0],
        model=model,
        condition=condition,
        params_id=params_id,
        seed=config["seeds"][0] if seed is None else seed,
    )


def _known(what: str, name: str, known: Any) -> None:
    if name not in known:
        raise InputError(f"unknown {what} '{name}'; the config has {sorted(known)}")
