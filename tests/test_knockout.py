"""Knockout conditions: exact values of every kind, the study's draw order, inputs left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from mmknockout.errors import InputError
from mmknockout.knockout import Condition


@pytest.fixture
def features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "text": rng.normal(size=(9, 5)).astype(np.float32),
        "image": rng.uniform(size=(9, 7)).astype(np.float32),
    }


def knock(spec: dict, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return Condition.parse("c", spec).apply(features)


def study_noise(features: dict[str, np.ndarray], mean=1.0, std=0.1, seed=42) -> dict[str, np.ndarray]:
    """The study's draws: one legacy RandomState, the text matrix first, then the image matrix."""
    rng = np.random.RandomState(seed)
    text = rng.normal(mean, std, size=features["text"].shape)
    image = rng.normal(mean, std, size=features["image"].shape)
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def test_noise_equals_the_studys_draws_exactly(features):
    expected = study_noise(features)
    for spec in ({"text": "noise", "image": "noise"}, {"text": "noise"}, {"image": "noise"}):
        out = knock(spec, features)
        for modality in spec:
            assert out[modality].dtype == np.float32
            np.testing.assert_array_equal(out[modality], expected[modality])


def test_noise_has_the_documented_distribution():
    big = {"text": np.zeros((400, 50), np.float32), "image": np.zeros((400, 60), np.float32)}
    out = knock({"text": "noise", "image": "noise"}, big)
    for x in out.values():
        assert abs(x.mean() - 1.0) < 0.002 and abs(x.std() - 0.1) < 0.002
    assert not np.array_equal(out["text"][:, :50], out["image"][:, :50])


def test_noise_mapping_spec_is_honoured(features):
    spec = {"kind": "noise", "mean": -2.0, "std": 3.0, "seed": 7}
    out = knock({"text": spec, "image": spec}, features)
    expected = study_noise(features, mean=-2.0, std=3.0, seed=7)
    for modality in ("text", "image"):
        np.testing.assert_array_equal(out[modality], expected[modality])


def test_image_noise_without_text_features_is_the_first_draw(features):
    image_only = {"image": features["image"]}
    out = knock({"image": "noise"}, image_only)
    expected = np.random.RandomState(42).normal(1.0, 0.1, size=features["image"].shape).astype(np.float32)
    np.testing.assert_array_equal(out["image"], expected)


@pytest.mark.parametrize(
    ("spec", "value"),
    [("ones", 1.0), ("zeros", 0.0), ({"kind": "constant", "value": 0.5}, 0.5), ({"kind": "constant"}, 1.0)],
)
def test_constants_are_exact(features, spec, value):
    out = knock({"text": spec, "image": spec}, features)
    for modality, real in features.items():
        assert out[modality].shape == real.shape and out[modality].dtype == np.float32
        assert (out[modality] == np.float32(value)).all()


def test_mean_keeps_every_column_mean_and_makes_rows_identical(features):
    out = knock({"text": "mean", "image": "mean"}, features)
    for modality, real in features.items():
        x = out[modality]
        assert x.shape == real.shape
        assert (x == x[0]).all()
        np.testing.assert_allclose(x.mean(axis=0), real.mean(axis=0), rtol=0, atol=1e-6)


def test_shuffle_is_a_seeded_row_permutation(features):
    out = knock({"text": "shuffle", "image": "shuffle"}, features)
    again = knock({"text": "shuffle", "image": "shuffle"}, features)
    for modality, real in features.items():
        x = out[modality]
        assert sorted(map(tuple, x.tolist())) == sorted(map(tuple, real.tolist()))
        assert not np.array_equal(x, real)
        np.testing.assert_array_equal(x, again[modality])
        rows = [int(np.flatnonzero((real == row).all(axis=1))[0]) for row in x]
        assert sorted(rows) == list(range(real.shape[0]))


def test_shuffle_seed_follows_the_study_order(features):
    rng = np.random.RandomState(5)
    text_perm, image_perm = rng.permutation(9), rng.permutation(9)
    spec = {"kind": "shuffle", "seed": 5}
    out = knock({"image": spec}, features)
    np.testing.assert_array_equal(out["image"], features["image"][image_perm])
    out = knock({"text": spec}, features)
    np.testing.assert_array_equal(out["text"], features["text"][text_perm])
    other = knock({"text": {"kind": "shuffle", "seed": 6}}, features)
    assert not np.array_equal(other["text"], out["text"])


@pytest.mark.parametrize("kind", ["noise", "ones", "zeros", "mean", "shuffle"])
def test_inputs_are_never_modified_and_untouched_modalities_pass_through(features, kind):
    copies = {m: x.copy() for m, x in features.items()}
    out = knock({"text": kind}, features)
    for modality, x in features.items():
        np.testing.assert_array_equal(x, copies[modality])
    assert out["image"] is features["image"]
    out["text"][...] = 123.0  # writing to the replacement never reaches the real features
    np.testing.assert_array_equal(features["text"], copies["text"])


def test_baseline_is_the_identity(features):
    out = Condition.parse("baseline", {}).apply(features)
    assert out is not features and all(out[m] is features[m] for m in features)


def test_missing_modality_is_skipped(features):
    out = knock({"text": "noise", "image": "zeros"}, {"text": features["text"]})
    assert set(out) == {"text"}


@pytest.mark.parametrize(
    "spec",
    [
        {"audio": "noise"},
        {"text": "gaussian"},
        {"text": {"kind": "blur"}},
        {"text": {"kind": "noise", "value": 1.0}},
        {"text": {"kind": "constant", "seed": 1}},
    ],
)
def test_bad_specs_are_input_errors(spec):
    with pytest.raises(InputError):
        Condition.parse("c", spec)
