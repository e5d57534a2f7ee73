"""Shared test tools: a tiny planted dataset, a training loop, yaml parameters and the generic checks
that tests/test_model_contract.py runs for every registered model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mmknockout.data import graphs
from mmknockout.data.dataset import SplitData
from mmknockout.knockout import Condition
from mmknockout.models.base import Recommender
from mmknockout.train.sampler import NegativeSampler

KNOCKOUTS = {
    "zeros": {"text": "zeros", "image": "zeros"},
    "ones": {"text": "ones", "image": "ones"},
    "noise": {"text": "noise", "image": "noise"},
    "shuffle": {"text": "shuffle", "image": "shuffle"},
    "mean": {"text": "mean", "image": "mean"},
    "constant": {"text": {"kind": "constant", "value": -2.5}, "image": {"kind": "constant", "value": 0.5}},
    "text-zeros": {"text": "zeros"},
    "image-noise": {"image": "noise"},
}


def params(model: str, **over: Any) -> dict[str, Any]:
    """The yaml's fixed values with the first value of every grid entry, then ``over``."""
    y = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "models" / f"{model}.yaml").read_text())
    return {**y["fixed"], **{k: v[0] for k, v in y["grid"].items()}, **over}


def tiny_split(
    n_users: int = 60, n_items: int = 40, n_clusters: int = 4, per_user: int = 8, seed: int = 0
) -> SplitData:
    """Users prefer one item cluster; 80/10/10-like per-user split; both auxiliary graphs built."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % n_clusters
    users, items, labels = [], [], []
    for u in range(n_users):
        liked = np.flatnonzero(cluster == u % n_clusters)
        others = np.flatnonzero(cluster != u % n_clusters)
        chosen = np.concatenate([rng.choice(liked, per_user - 2, replace=False), rng.choice(others, 2, replace=False)])
        rng.shuffle(chosen)
        users += [u] * per_user
        items += chosen.tolist()
        labels += [0] * (per_user - 2) + [1, 2]
    data = SplitData(n_users, n_items, np.array(users), np.array(items), np.array(labels), name="tiny")
    data.user_graph = graphs.user_graph(data, k=10)
    data.item_graph = graphs.item_graph(data, k=2, min_count=2)
    return data


def tiny_features(
    n_items: int = 40, n_clusters: int = 4, text_dim: int = 12, image_dim: int = 20, seed: int = 1
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % n_clusters
    text = np.eye(n_clusters)[cluster] @ rng.normal(size=(n_clusters, text_dim)) + 0.1 * rng.normal(
        size=(n_items, text_dim)
    )
    image = np.abs(
        np.eye(n_clusters)[cluster] @ rng.normal(size=(n_clusters, image_dim)) + rng.normal(size=(n_items, image_dim))
    )
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def as_tensors(features: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in features.items()}


def build(
    model_cls: type[Recommender],
    params: Mapping[str, Any],
    data: SplitData | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> Recommender:
    torch.manual_seed(seed)
    np.random.seed(seed)
    data = data or tiny_split()
    features = tiny_features(data.n_items) if features is None else features
    return model_cls(data, as_tensors(features), params)


def train_epochs(
    model: Recommender, data: SplitData, epochs: int, lr: float = 0.01, batch_size: int = 128
) -> list[float]:
    """Plain Adam loop; returns the mean training loss of every epoch."""
    sampler = NegativeSampler(data, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        model.on_epoch_start(epoch)
        losses = []
        for users, pos, neg in sampler.epoch(batch_size):
            loss = model.loss(users, pos, neg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    return history


def full_scores(model: Recommender, n_users: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        reps = model.representations()
        return model.score(torch.arange(n_users), reps)


def assert_loss_decreases(
    model_cls: type[Recommender],
    params: Mapping[str, Any],
    epochs: int = 30,
    lr: float = 0.01,
    features: Mapping[str, np.ndarray] | None = None,
) -> None:
    data = tiny_split()
    model = build(model_cls, params, data, features)
    history = train_epochs(model, data, epochs, lr=lr)
    assert np.isfinite(history).all(), history
    assert np.mean(history[-3:]) < np.mean(history[:3]), history


def single_slot(kept: str) -> dict[str, np.ndarray]:
    """The tiny features with only the ``kept`` modality (a one-slot feature set)."""
    return {kept: tiny_features()[kept]}


def assert_knockouts_finite(model_cls: type[Recommender], params: Mapping[str, Any], epochs: int = 2) -> None:
    data = tiny_split()
    real = tiny_features(data.n_items)
    for name, spec in KNOCKOUTS.items():
        features = Condition.parse(name, spec).apply(real)
        model = build(model_cls, params, data, features)
        history = train_epochs(model, data, epochs)
        assert np.isfinite(history).all(), f"{name}: loss {history}"
        scores = full_scores(model, data.n_users)
        assert scores.shape == (data.n_users, data.n_items)
        assert torch.isfinite(scores).all(), f"{name}: non-finite scores"


def trained_run(
    model_cls: type[Recommender],
    params: Mapping[str, Any],
    epochs: int = 2,
    features: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[float], torch.Tensor]:
    """Loss history and full score matrix of one seeded build-and-train."""
    data = tiny_split()
    model = build(model_cls, params, data, features)
    history = train_epochs(model, data, epochs)
    return history, full_scores(model, data.n_users)


def run_spec(
    model: str,
    params: Mapping[str, Any],
    condition: str = "baseline",
    condition_spec: Mapping[str, Any] | None = None,
    seed: int = 1,
    training: Mapping[str, Any] | None = None,
):
    """A RunSpec for ``run.train_run`` outside any config (file names are not used)."""
    from mmknockout.spec import RunSpec

    return RunSpec(
        dataset="tiny",
        feature_set="default",
        text_encoder="t",
        image_encoder="i",
        model=model,
        params_id="p",
        params=dict(params),
        condition=condition,
        condition_spec=dict(condition_spec or {}),
        seed=seed,
        training=dict(training or {"epochs": 1}),
    )


def run_outputs(folder) -> dict[str, Any]:
    """The three output files of a run in ``folder``."""
    from pathlib import Path

    folder = Path(folder)
    return {"metrics": folder / "metrics.json", "history": folder / "history.csv", "per_user": folder / "per_user.npz"}


def write_tiny_dataset(folder: Path) -> dict:
    """The tiny split as a .inter file and its features as .npy files in ``folder``: train_run's inputs."""
    data = tiny_split()
    rows = np.stack(
        [data.users, data.items, np.full(len(data.users), 5), np.ones(len(data.users), int), data.labels], 1
    )
    inter = folder / "tiny.inter"
    inter.write_text(
        "userID\titemID\trating\ttimestamp\tx_label\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    )
    features = tiny_features(data.n_items)
    for name, x in features.items():
        np.save(folder / f"{name}.npy", x)
    return {"inter": inter, "features": {m: folder / f"{m}.npy" for m in features}}
