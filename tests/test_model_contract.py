"""The contract every registered model keeps, generated from the registry."""
from __future__ import annotations

import model_kit
import numpy as np
import pytest
import torch

from mmknockout.models.registry import (
    FEATURE_FREE,
    MODELS,
    get_model_class,
    validate_params,
)

#: (epochs, learning rate) under which each model's training loss must fall on the tiny data
DECREASE = {"BPR": (30, 0.05), "LightGCN": (30, 0.05), "VBPR": (30, 0.05), "GRCN": (20, 0.01),
            "DualGNN": (20, 0.01), "MMGCN": (20, 0.01), "FREEDOM": (30, 0.02), "DAMRS": (20, 0.02),
            "DRAGON": (20, 0.01), "PGL": (20, 0.02)}


@pytest.mark.parametrize("name", MODELS)
def test_yaml_grid_is_valid(name):
    validate_params(name, model_kit.params(name))


@pytest.fixture
def one_thread():
    """Multi-threaded BLAS may split a reduction differently from run to run (LATTICE's scores then
    differ in the last bit), so bit-for-bit reproducibility is checked on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", MODELS)
def test_deterministic(name, one_thread):
    cls, p = get_model_class(name), model_kit.params(name)
    (loss_a, scores_a), (loss_b, scores_b) = model_kit.trained_run(cls, p), model_kit.trained_run(cls, p)
    assert loss_a == loss_b
    assert torch.equal(scores_a, scores_b)


@pytest.mark.parametrize("name", MODELS)
def test_loss_decreases(name):
    epochs, lr = DECREASE.get(name, (30, 0.01))
    model_kit.assert_loss_decreases(get_model_class(name), model_kit.params(name), epochs=epochs, lr=lr)


@pytest.mark.parametrize("name", sorted(set(MODELS) - FEATURE_FREE))
def test_knockouts_train_and_score_finite(name):
    model_kit.assert_knockouts_finite(get_model_class(name), model_kit.params(name))


@pytest.mark.parametrize("name", sorted(FEATURE_FREE))
def test_feature_free_scores_ignore_features(name):
    cls = get_model_class(name)
    assert cls.modalities == ()
    real = model_kit.tiny_features()
    other = {k: np.random.default_rng(7).normal(size=(v.shape[0], 3 * v.shape[1])).astype(np.float32)
             for k, v in real.items()}
    loss_a, scores_a = model_kit.trained_run(cls, model_kit.params(name), features=real)
    loss_b, scores_b = model_kit.trained_run(cls, model_kit.params(name), features=other)
    assert loss_a == loss_b
    assert torch.equal(scores_a, scores_b)


@pytest.mark.parametrize("name", MODELS)
def test_declares_family_and_documented_params(name):
    cls = get_model_class(name)
    assert cls.family and cls.Params.__name__ == f"{name}Params"
    assert all(cls.Params.describe().values()), cls.Params.describe()
