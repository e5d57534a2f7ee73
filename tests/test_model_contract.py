"""The contract every registered model keeps, generated from the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmknockout.errors import InputError
from mmknockout.knockout import MODALITY_ORDER, Condition
from mmknockout.models.registry import (
    CLOSED_FORM,
    FAMILIES,
    FEATURE_FREE,
    MODELS,
    OPTIONAL_MODALITIES,
    REQUIRES,
    STUDY_ORDER,
    get_model_class,
    validate_params,
)
from mmknockout.train.trainer import make_optimizer

import model_kit

#: (epochs, learning rate) under which each model's training loss must fall on the tiny data
DECREASE = {
    "BPR": (30, 0.05),
    "LightGCN": (30, 0.05),
    "VBPR": (30, 0.05),
    "GRCN": (20, 0.01),
    "DualGNN": (20, 0.01),
    "MMGCN": (20, 0.01),
    "FREEDOM": (30, 0.02),
    "DAMRS": (20, 0.02),
    "DRAGON": (20, 0.01),
    "PGL": (20, 0.02),
}


#: the epoch-trained models (the closed-form ones have their own contract in tests/test_knn.py)
EPOCH_MODELS = [m for m in MODELS if m not in CLOSED_FORM]

#: (model, the one modality it keeps) for every model that can run without the other one
SINGLE_SLOT = [
    (name, kept)
    for name, optional in OPTIONAL_MODALITIES.items()
    for kept in MODALITY_ORDER
    if set(MODALITY_ORDER) - {kept} <= set(optional)
]
#: models that read features and cannot run without either modality
NEEDS_BOTH = sorted(set(EPOCH_MODELS) - FEATURE_FREE - set(OPTIONAL_MODALITIES))


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


@pytest.mark.parametrize("name", EPOCH_MODELS)
def test_deterministic(name, one_thread):
    cls, p = get_model_class(name), model_kit.params(name)
    (loss_a, scores_a), (loss_b, scores_b) = model_kit.trained_run(cls, p), model_kit.trained_run(cls, p)
    assert loss_a == loss_b
    assert torch.equal(scores_a, scores_b)


@pytest.mark.parametrize("name", EPOCH_MODELS)
def test_loss_decreases(name):
    epochs, lr = DECREASE.get(name, (30, 0.01))
    model_kit.assert_loss_decreases(get_model_class(name), model_kit.params(name), epochs=epochs, lr=lr)


@pytest.mark.parametrize("name", sorted(set(EPOCH_MODELS) - FEATURE_FREE))
def test_knockouts_train_and_score_finite(name):
    model_kit.assert_knockouts_finite(get_model_class(name), model_kit.params(name))


@pytest.mark.parametrize(("name", "kept"), SINGLE_SLOT)
def test_single_slot_trains_finite_and_loss_decreases(name, kept):
    epochs, lr = DECREASE.get(name, (30, 0.01))
    cls = get_model_class(name)
    model_kit.assert_loss_decreases(cls, model_kit.params(name), epochs, lr, features=model_kit.single_slot(kept))
    model = model_kit.build(cls, model_kit.params(name), features=model_kit.single_slot(kept))
    assert model.present_modalities == (kept,)


@pytest.mark.parametrize(("name", "kept"), SINGLE_SLOT)
def test_absent_condition_is_the_one_slot_model(name, kept, one_thread):
    """``absent`` drops the other modality: the run equals the one-slot run bit for bit."""
    cls, p = get_model_class(name), model_kit.params(name)
    other = next(m for m in MODALITY_ORDER if m != kept)
    absent = Condition.parse(f"{other}-absent", {other: "absent"}).apply(model_kit.tiny_features())
    assert set(absent) == {kept}
    (loss_a, scores_a), (loss_b, scores_b) = (
        model_kit.trained_run(cls, p, features=absent),
        model_kit.trained_run(cls, p, features=model_kit.single_slot(kept)),
    )
    assert np.isfinite(loss_a).all() and loss_a == loss_b
    assert torch.isfinite(scores_a).all() and torch.equal(scores_a, scores_b)


@pytest.mark.parametrize("name", sorted(OPTIONAL_MODALITIES))
def test_no_modality_left_is_refused(name):
    with pytest.raises(InputError, match=f"{name} needs text or image features, but both are missing"):
        model_kit.build(get_model_class(name), model_kit.params(name), features={})


@pytest.mark.parametrize("name", NEEDS_BOTH)
@pytest.mark.parametrize("kept", MODALITY_ORDER)
def test_models_needing_both_refuse_one_slot(name, kept):
    missing = next(m for m in MODALITY_ORDER if m != kept)
    with pytest.raises(InputError, match=f"{name} cannot run without {missing} features \\(missing slot: {missing}\\)"):
        model_kit.build(get_model_class(name), model_kit.params(name), features=model_kit.single_slot(kept))


@pytest.mark.parametrize("name", sorted(FEATURE_FREE - CLOSED_FORM))
def test_feature_free_scores_ignore_features(name):
    cls = get_model_class(name)
    assert cls.modalities == ()
    real = model_kit.tiny_features()
    other = {
        k: np.random.default_rng(7).normal(size=(v.shape[0], 3 * v.shape[1])).astype(np.float32)
        for k, v in real.items()
    }
    loss_a, scores_a = model_kit.trained_run(cls, model_kit.params(name), features=real)
    loss_b, scores_b = model_kit.trained_run(cls, model_kit.params(name), features=other)
    assert loss_a == loss_b
    assert torch.equal(scores_a, scores_b)


@pytest.mark.parametrize("name", MODELS)
def test_declares_family_and_documented_params(name):
    cls = get_model_class(name)
    assert cls.family and cls.Params.__name__ == f"{name}Params"
    assert all(cls.Params.describe().values()), cls.Params.describe()


def test_registry_reads_the_classes():
    # the base study's models in its order, then every further model by name
    assert MODELS[: len(STUDY_ORDER)] == STUDY_ORDER
    assert list(MODELS[len(STUDY_ORDER) :]) == sorted(MODELS[len(STUDY_ORDER) :]) and "VIRAL" in MODELS
    assert FEATURE_FREE == {"BPR", "LightGCN", "Random", "MostPop", "ItemKNN"}
    assert CLOSED_FORM == {"Random", "MostPop", "ItemKNN", "AttributeItemKNN"}
    assert REQUIRES == {
        "DualGNN": ("user_graph",),
        "DRAGON": ("user_graph",),
        "DAMRS": ("item_graph",),
        "VIRAL": ("user_graph",),
    }
    both = ("text", "image")
    assert OPTIONAL_MODALITIES == {m: both for m in ("VBPR", "BM3", "LATTICE", "FREEDOM", "DRAGON")}
    assert {FAMILIES[m] for m in MODELS} == {
        "no features",
        "simple fusion",
        "user-item graph",
        "item-item graph",
        "hybrid",
        "closed form",
    }
    with pytest.raises(InputError, match="unknown model 'Nope'"):
        get_model_class("Nope")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"reg_weight": -5}, "'reg_weight' must be >= 0"),
        ({"embedding_size": 0}, "'embedding_size' must be >= 1"),
        ({"learning_rate": -0.1}, "'learning_rate' must be > 0"),
        ({"knn_k": 2.5}, "'knn_k' must be an int"),
        ({"dropout": "high"}, "'dropout' must be a float"),
        ({"lr_scheduler": [1.0]}, "'lr_scheduler' must be a list of 2 values"),
        ({"depth": 3}, "unknown hyper-parameter 'depth'"),
        ({"knn_k": None}, "missing hyper-parameter 'knn_k'"),
    ],
)
def test_validate_params_names_model_and_key(change, fragment):
    params = {k: v for k, v in {**model_kit.params("FREEDOM"), **change}.items() if v is not None}
    with pytest.raises(InputError, match="FREEDOM: ") as err:
        validate_params("FREEDOM", params)
    assert fragment in str(err.value)


def test_construction_and_optimiser_check_their_params():
    data, features = model_kit.tiny_split(), model_kit.as_tensors(model_kit.tiny_features())
    with pytest.raises(InputError, match="FREEDOM: hyper-parameter 'reg_weight' must be >= 0"):
        get_model_class("FREEDOM")(data, features, model_kit.params("FREEDOM", reg_weight=-5))
    model = get_model_class("BPR")(data, features, model_kit.params("BPR"))
    with pytest.raises(InputError, match="BPR: hyper-parameter 'weight_decay' must be >= 0"):
        make_optimizer(model, model_kit.params("BPR", weight_decay=-1.0))
