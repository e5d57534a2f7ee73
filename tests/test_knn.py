"""Closed-form recommenders against brute-force numpy, their own contract, and the fit-once run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmknockout.data.dataset import TRAIN, SplitData
from mmknockout.errors import InputError
from mmknockout.knockout import Condition
from mmknockout.models import knn
from mmknockout.models.registry import CLOSED_FORM, get_model_class
from mmknockout.train.trainer import TrainConfig, fit_closed_form

import model_kit

PARAMS = {"neighbors": 4, "asymmetric_alpha": 0.3, "tversky_alpha": 0.7, "tversky_beta": 1.6}


def brute_similarity(p: np.ndarray, kind: str, alpha=0.3, t_alpha=0.7, t_beta=1.6) -> np.ndarray:
    """Every pair's similarity, one pair at a time, straight from the definitions."""
    n = p.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            x, y = p[i], p[j]
            if kind in ("jaccard", "tversky"):
                x, y = (x != 0).astype(float), (y != 0).astype(float)
            xy = float(x @ y)
            if xy == 0:
                continue
            if kind == "dot":
                s = xy
            elif kind == "cosine":
                s = xy / (np.linalg.norm(x) * np.linalg.norm(y))
            elif kind == "asym":
                s = xy / ((x @ x) ** alpha * (y @ y) ** (1 - alpha))
            elif kind == "jaccard":
                s = xy / (x.sum() + y.sum() - xy)
            else:
                s = xy / (t_alpha * (x.sum() - xy) + t_beta * (y.sum() - xy) + xy)
            out[i, j] = s
    return out


def brute_topk(sim: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(sim)
    for i, row in enumerate(sim):
        order = np.argsort(-row, kind="stable")[:k]
        keep = order[row[order] > 0]
        out[i, keep] = row[keep]
    return out


def random_profiles(seed=0, n=9, f=14) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, f)) * (rng.random((n, f)) < 0.4) * 5


@pytest.mark.parametrize("kind", knn.SIMILARITIES)
def test_topk_similarity_matches_brute_force(kind):
    p = random_profiles()
    hp = knn.ItemKNNParams(similarity=kind, **PARAMS)
    got = knn.topk_similarity(sp.csr_matrix(p), hp).toarray()
    np.testing.assert_allclose(got, brute_topk(brute_similarity(p, kind), 4), rtol=1e-6)


def test_small_blocks_give_the_same_matrix(monkeypatch):
    p = sp.csr_matrix(random_profiles(seed=3, n=12))
    hp = knn.ItemKNNParams(similarity="cosine", **PARAMS)
    whole = knn.topk_similarity(p, hp).toarray()
    monkeypatch.setattr(knn, "BLOCK_ENTRIES", 13)  # one row per block
    np.testing.assert_array_equal(knn.topk_similarity(p, hp).toarray(), whole)


def brute_weigh(p: np.ndarray, kind: str) -> np.ndarray:
    n = p.shape[0]
    df = (p > 0).sum(axis=0)
    out = np.zeros_like(p)
    length = p.sum(axis=1)
    for i in range(n):
        for j in range(p.shape[1]):
            if p[i, j] == 0:
                continue
            if kind == "tfidf":
                out[i, j] = np.sqrt(p[i, j]) * np.log(n / (1 + df[j]))
            else:
                idf = np.log((n - df[j] + 0.5) / (df[j] + 0.5))
                norm = 0.25 + 0.75 * length[i] / length.mean()
                out[i, j] = idf * p[i, j] * 2.2 / (p[i, j] + 1.2 * norm)
    return out


@pytest.mark.parametrize("kind", ["tfidf", "bm25"])
def test_weighting_matches_brute_force(kind):
    p = random_profiles(seed=1)
    np.testing.assert_allclose(knn.weigh(sp.csr_matrix(p), kind).toarray(), brute_weigh(p, kind), rtol=1e-10)
    assert knn.weigh(sp.csr_matrix(p), "none").nnz == sp.csr_matrix(p).nnz


def rated_split() -> SplitData:
    data = model_kit.tiny_split()
    data.ratings = np.random.default_rng(5).integers(1, 6, size=data.users.size).astype(np.float64)
    return data


def keyword_features(n_items=40, seed=2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    onehot = np.zeros((n_items, 6), dtype=np.float32)
    onehot[np.arange(n_items), rng.integers(0, 3, n_items)] = 1
    onehot[np.arange(n_items), 3 + rng.integers(0, 3, n_items)] = 1
    return {"text": onehot}


def scores_of(model, n_users):
    return model.score(torch.arange(n_users), model.representations()).numpy()


@pytest.mark.parametrize("feat_w", knn.WEIGHTINGS)
def test_attribute_item_knn_scores_are_r_times_w_of_the_hybrid_profile(feat_w):
    data, features = rated_split(), keyword_features()
    params = {"similarity": "cosine", "weight": 2.5, "feat_w": feat_w, **PARAMS, "neighbors": 7}
    model = model_kit.build(knn.AttributeItemKNN, params, data=data, features=features)
    r = data.rating_matrix(TRAIN).toarray().astype(np.float64)
    profile = np.hstack([2.5 * features["text"], r.T])
    profile = brute_weigh(profile, feat_w) if feat_w != "none" else profile
    w = brute_topk(brute_similarity(profile, "cosine"), 7)
    np.testing.assert_allclose(scores_of(model, data.n_users), r @ w, rtol=1e-5, atol=1e-6)


def test_item_knn_uses_ratings_or_binary_interactions():
    data = rated_split()
    for implicit in (False, True):
        params = {"similarity": "asym", **PARAMS, "implicit": implicit}
        model = model_kit.build(knn.ItemKNN, params, data=data)
        r = (data.matrix(TRAIN) if implicit else data.rating_matrix(TRAIN)).toarray().astype(np.float64)
        w = brute_topk(brute_similarity(r.T, "asym"), 4)
        np.testing.assert_allclose(scores_of(model, data.n_users), r @ w, rtol=1e-5, atol=1e-6)


def test_attribute_knockouts_shuffle_rows_and_zeros_remove_the_block():
    data, features = rated_split(), keyword_features()
    params = {"similarity": "cosine", "weight": 1.0, "feat_w": "none", **PARAMS}
    zeros = Condition.parse("kw-zeros", {"text": "zeros"}).apply(features)
    shuffled = Condition.parse("kw-shuffle", {"text": "shuffle"}).apply(features)
    item_knn = scores_of(model_kit.build(knn.ItemKNN, {"similarity": "cosine", **PARAMS}, data=data), data.n_users)
    np.testing.assert_allclose(
        scores_of(model_kit.build(knn.AttributeItemKNN, params, data=data, features=zeros), data.n_users), item_knn
    )
    assert sorted(map(tuple, shuffled["text"])) == sorted(map(tuple, features["text"]))
    real = scores_of(model_kit.build(knn.AttributeItemKNN, params, data=data, features=features), data.n_users)
    knocked = scores_of(model_kit.build(knn.AttributeItemKNN, params, data=data, features=shuffled), data.n_users)
    assert np.isfinite(knocked).all() and not np.allclose(real, knocked)


def test_most_pop_and_random():
    data = rated_split()
    pop = scores_of(model_kit.build(knn.MostPop, {}, data=data), 3)
    np.testing.assert_array_equal(pop[0], np.bincount(data.train_items, minlength=data.n_items))
    assert (pop == pop[0]).all()
    rand = model_kit.build(knn.Random, {"random_seed": 42}, data=data)
    full = scores_of(rand, data.n_users)
    np.testing.assert_array_equal(rand.score(torch.tensor([5, 2]), ()).numpy(), full[[5, 2]])  # batch-invariant
    assert 0 <= full.min() and full.max() < 1 and abs(full.mean() - 0.5) < 0.05
    other = scores_of(model_kit.build(knn.Random, {"random_seed": 43}, data=data), data.n_users)
    assert not np.array_equal(full, other)


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_closed_form_contract(name):
    """Every closed-form model: finite deterministic scores, no loss, one fit and one evaluation."""
    cls = get_model_class(name)
    assert cls.closed_form and cls.family == "closed form"
    data, features = rated_split(), keyword_features()
    params = model_kit.params(name)
    a, b = (scores_of(model_kit.build(cls, params, data=data, features=features), data.n_users) for _ in range(2))
    assert a.shape == (data.n_users, data.n_items) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="closed form"):
        model_kit.build(cls, params, data=data, features=features).loss(None, None, None)
    tensors = model_kit.as_tensors(features)
    result = fit_closed_form(cls, data, tensors, params, TrainConfig(topk=(5, 10), valid_metric="Recall@10"))
    assert result.stop_reason == "closed_form" and result.epochs_run == 0 and result.best_epoch == 0
    assert set(result.test) >= {"Recall@10", "NDCG@10", "HitRate@10"}
    assert all(np.isfinite(v) for v in result.test.values())
    json.dumps(result.summary())


def test_neighbourhood_beats_random_on_the_planted_clusters():
    data = rated_split()
    cfg = TrainConfig(topk=(10,), valid_metric="Recall@10")
    got = {
        name: fit_closed_form(get_model_class(name), data, {}, model_kit.params(name), cfg).test["Recall@10"]
        for name in ("Random", "ItemKNN")
    }
    assert got["ItemKNN"] > got["Random"]


def test_attribute_item_knn_needs_the_keyword_slot():
    with pytest.raises(InputError, match="AttributeItemKNN"):
        model_kit.build(knn.AttributeItemKNN, model_kit.params("AttributeItemKNN"), features={})
