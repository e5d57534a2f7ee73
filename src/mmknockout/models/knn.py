"""Closed-form recommenders (Pomo et al. 2025's baselines, as in Elliot): Random, MostPop, ItemKNN and
Attribute Item-kNN. They have no loss and no epochs: the trainer builds them once and evaluates
(:func:`mmknockout.train.trainer.fit_closed_form`).

Item-kNN scores ``S = R W`` with ``R`` the training user x item matrix of *ratings* (binary when
``implicit``) and ``W`` the top-``neighbors`` similarities of every item's profile row:

* ItemKNN: the profile of item i is its column of ``R`` (``P = R^T``);
* Attribute Item-kNN: ``P = [weight * A, R^T]``, the keyword one-hot ``A`` (the text slot) beside the
  ratings, optionally re-weighted by TF-IDF or BM25 (items are the documents, :func:`weigh`).

Similarities of rows x, y (``xy`` their dot product; :func:`similarity_block`), as similaripy computes them:
dot ``xy``; cosine ``xy / (|x|_2 |y|_2)``; asymmetric cosine ``xy / ((x.x)^a (y.y)^(1-a))``; on the
binarised profiles, Jaccard ``xy / (|x| + |y| - xy)`` and Tversky ``xy / (a(|x| - xy) + b(|y| - xy) + xy)``
(``|x|`` the count of non-zeros). Only positive similarities of pairs with ``xy != 0`` are kept; the top
``neighbors`` per row include the item itself (its own training items are masked at scoring anyway);
ties at the cut go to the lower item index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import TRAIN, SplitData
from .base import Features, Recommender
from .params import HyperParams, hp

SIMILARITIES = ("cosine", "asym", "dot", "jaccard", "tversky")
BINARY_SIMILARITIES = ("jaccard", "tversky")
WEIGHTINGS = ("none", "tfidf", "bm25")
#: similarity entries computed per block of rows (a dense block of at most this many floats)
BLOCK_ENTRIES = 1 << 24


class ClosedFormRecommender(Recommender):
    """A recommender fitted in closed form when built: no parameters, no loss, no epochs.

    ``score(users, reps)`` returns the dense scores of a user batch; ``representations()`` is empty.
    """

    closed_form: ClassVar[bool] = True

    def representations(self) -> tuple[torch.Tensor, ...]:
        return ()

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} is fitted in closed form; it has no training loss")

    def scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, users: torch.Tensor, reps: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out = self.scores(users.cpu().numpy())
        return torch.from_numpy(np.array(out, dtype=np.float32)).to(users.device)


@dataclass(frozen=True, kw_only=True)
class RandomParams(HyperParams):
    random_seed: int = hp(42, "seed of the random scores", ge=0)


class Random(ClosedFormRecommender):
    """Uniform random scores, a fixed function of (seed, user, item): the same in every batch."""

    Params = RandomParams
    family = "closed form"
    modalities = ()

    def scores(self, users: np.ndarray) -> np.ndarray:
        out = np.empty((users.size, self.n_items), dtype=np.float32)
        items = np.arange(self.n_items, dtype=np.uint64)
        step = max(1, BLOCK_ENTRIES // max(self.n_items, 1))  # bounds the uint64 temporaries
        for start in range(0, users.size, step):
            block = users[start : start + step].astype(np.uint64)
            out[start : start + step] = uniform_hash(
                block[:, None] * np.uint64(self.n_items) + items, self.hp.random_seed
            )
        return out


def uniform_hash(keys: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of ``keys + seed`` mapped to [0, 1): independent-looking uniform numbers per key."""
    with np.errstate(over="ignore"):
        z = keys + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True, kw_only=True)
class MostPopParams(HyperParams):
    pass


class MostPop(ClosedFormRecommender):
    """Every user gets the items ranked by their number of training interactions."""

    Params = MostPopParams
    family = "closed form"
    modalities = ()

    def __init__(self, data: SplitData, features: Features, params: dict[str, Any]) -> None:
        super().__init__(data, features, params)
        self.popularity = np.bincount(data.train_items, minlength=data.n_items).astype(np.float32)

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (users.size, 1))


@dataclass(frozen=True, kw_only=True)
class ItemKNNParams(HyperParams):
    neighbors: int = hp(40, "neighbours kept per item (top-k similarities)", ge=1)
    similarity: str = hp("cosine", "similarity of item profiles", choices=SIMILARITIES)
    asymmetric_alpha: float = hp(0.5, "exponent a of the asymmetric cosine", ge=0)
    tversky_alpha: float = hp(1.0, "Tversky weight of the first item's own entries", ge=0)
    tversky_beta: float = hp(1.0, "Tversky weight of the second item's own entries", ge=0)
    implicit: bool = hp(False, "binary interactions instead of ratings in R")


class ItemKNN(ClosedFormRecommender):
    """Item-based kNN over the items' rating columns."""

    Params = ItemKNNParams
    family = "closed form"
    modalities = ()

    def __init__(self, data: SplitData, features: Features, params: dict[str, Any]) -> None:
        super().__init__(data, features, params)
        self.train = data.matrix(TRAIN) if self.hp.implicit else data.rating_matrix(TRAIN)
        self.weights = topk_similarity(self.profiles(data, features), self.hp)

    def profiles(self, data: SplitData, features: Features) -> sp.csr_matrix:
        return self.train.T.tocsr()

    def scores(self, users: np.ndarray) -> np.ndarray:
        return (self.train[users] @ self.weights).toarray()


@dataclass(frozen=True, kw_only=True)
class AttributeItemKNNParams(ItemKNNParams):
    weight: float = hp(1.0, "scale w of the attribute block in the profile [w A, R^T]", ge=0)
    feat_w: str = hp("none", "weighting of the profile: none, tfidf or bm25", choices=WEIGHTINGS)


class AttributeItemKNN(ItemKNN):
    """Item-kNN over hybrid profiles: the keyword one-hot (text slot) beside the rating columns."""

    Params = AttributeItemKNNParams
    family = "closed form"
    modalities = ("text",)

    def profiles(self, data: SplitData, features: Features) -> sp.csr_matrix:
        attributes = sp.csr_matrix(features["text"].cpu().numpy().astype(np.float64))
        ratings = data.rating_matrix(TRAIN).T
        return weigh(sp.hstack([self.hp.weight * attributes, ratings], format="csr"), self.hp.feat_w)


def weigh(profiles: sp.csr_matrix, kind: str, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """TF-IDF or BM25 over the rows (documents) of ``profiles``, as similaripy's defaults.

    tfidf: ``sqrt(x) * log(N / (1 + df))``; bm25: ``idf * x (k1 + 1) / (x + k1 (1 - b + b len / avglen))``
    with ``idf = log((N - df + 0.5) / (df + 0.5))``; ``df`` = rows with a positive entry in the column,
    ``len`` = the row's sum. ``none`` returns the profiles unchanged.
    """
    if kind == "none":
        return profiles
    out = profiles.tocsr(copy=True)
    out.eliminate_zeros()
    n_docs = out.shape[0]
    df = np.bincount(out.indices[out.data > 0], minlength=out.shape[1]).astype(np.float64)
    cols = out.indices
    rows = np.repeat(np.arange(n_docs), np.diff(out.indptr))
    if kind == "tfidf":
        out.data = np.sqrt(out.data) * np.log(n_docs / (1.0 + df[cols]))
        return out
    length = np.asarray(out.sum(axis=1)).ravel()
    norm = (1.0 - b) + b * length / length.mean()
    idf = np.log((n_docs - df + 0.5) / (df + 0.5))
    out.data = idf[cols] * (out.data * (k1 + 1.0) / (out.data + k1 * norm[rows]))
    return out


def similarity_block(xy: np.ndarray, rows: slice, stats: dict[str, np.ndarray], hp: ItemKNNParams) -> np.ndarray:
    """Similarities of a block of rows to every row, from their dot products ``xy`` and row statistics."""
    kind = hp.similarity
    if kind == "dot":
        return xy
    if kind in BINARY_SIMILARITIES:
        x, y = stats["count"][rows, None], stats["count"][None, :]
        a, b = (1.0, 1.0) if kind == "jaccard" else (hp.tversky_alpha, hp.tversky_beta)
        denominator = a * (x - xy) + b * (y - xy) + xy
    else:
        alpha = 0.5 if kind == "cosine" else hp.asymmetric_alpha
        denominator = stats["squares"][rows, None] ** alpha * stats["squares"][None, :] ** (1.0 - alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, xy / denominator, 0.0)


def top_k_mask(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of each row's ``k`` largest entries; ties at the cut go to the lower column index."""
    if k >= values.shape[1]:
        return np.ones(values.shape, dtype=bool)
    cut = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
    above = values > cut
    tied = values == cut
    room = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def topk_similarity(profiles: sp.csr_matrix, hp: ItemKNNParams) -> sp.csr_matrix:
    """The n x n matrix of every row's top-``neighbors`` positive similarities (sparse, float32).

    Computed in dense blocks of rows (``profiles[block] @ profiles.T``); no loop over single items.
    """
    profiles = profiles.tocsr().astype(np.float64)
    if hp.similarity in BINARY_SIMILARITIES:
        profiles = profiles.copy()
        profiles.eliminate_zeros()
        profiles.data[:] = 1.0
    stats = {
        "count": np.diff(profiles.indptr).astype(np.float64),
        "squares": np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel(),
    }
    n = profiles.shape[0]
    k = min(hp.neighbors, n)
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    transposed = profiles.T.tocsc()
    parts_rows, parts_cols, parts_vals = [], [], []
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        xy = (profiles[rows] @ transposed).toarray()
        sim = similarity_block(xy, rows, stats, hp)
        sim[xy == 0] = 0.0
        keep = top_k_mask(sim, k) & (sim > 0)
        rows_at, cols_at = np.nonzero(keep)
        parts_rows.append(rows_at + start)
        parts_cols.append(cols_at)
        parts_vals.append(sim[rows_at, cols_at])
    data = np.concatenate(parts_vals).astype(np.float32)
    return sp.csr_matrix((data, (np.concatenate(parts_rows), np.concatenate(parts_cols))), shape=(n, n))
