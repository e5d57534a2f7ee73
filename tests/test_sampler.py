"""Negative sampling: never a user's own training item, every pair once per epoch, seeded."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mmknockout.data.dataset import SplitData
from mmknockout.errors import InputError
from mmknockout.train.sampler import NegativeSampler


def dense_split(n_users: int = 30, n_items: int = 12, free: int = 1, seed: int = 0) -> SplitData:
    """Each user has all but ``free`` training items as positives (plus one valid and one test item)."""
    rng = np.random.default_rng(seed)
    users, items, labels = [], [], []
    for u in range(n_users):
        order = rng.permutation(n_items)
        train, rest = order[: n_items - free], order[n_items - free :]
        users += [u] * n_items
        items += train.tolist() + rest.tolist()
        labels += [0] * train.size + [1, 2][: rest.size] + [1] * max(rest.size - 2, 0)
    return SplitData(n_users, n_items, np.array(users), np.array(items), np.array(labels))


def epoch_arrays(sampler: NegativeSampler, batch_size: int) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    batches = [[t.numpy() for t in batch] for batch in sampler.epoch(batch_size)]
    sizes = [len(b[0]) for b in batches]
    users, pos, neg = (np.concatenate([b[i] for b in batches]) for i in range(3))
    return sizes, users, pos, neg


def test_negatives_are_never_a_training_item_of_their_user():
    data = dense_split(free=1)  # a single non-positive item per user: rejection does nearly all the work
    train = {(u, i) for u, i in zip(data.train_users.tolist(), data.train_items.tolist(), strict=True)}
    sampler = NegativeSampler(data, seed=3)
    for _ in range(5):
        _, users, _, neg = epoch_arrays(sampler, batch_size=64)
        assert not any((u, j) in train for u, j in zip(users.tolist(), neg.tolist(), strict=True))
        assert set(neg.tolist()) <= set(np.unique(data.train_items).tolist())


def test_every_training_pair_appears_exactly_once_per_epoch():
    data = dense_split(free=3)
    sampler = NegativeSampler(data, seed=1)
    expected = Counter(zip(data.train_users.tolist(), data.train_items.tolist(), strict=True))
    for _ in range(3):
        _, users, pos, _ = epoch_arrays(sampler, batch_size=50)
        assert Counter(zip(users.tolist(), pos.tolist(), strict=True)) == expected


def test_batches_have_the_requested_size_and_a_short_last_one():
    data = dense_split(free=3)
    n = data.train_users.size
    sizes, *_ = epoch_arrays(NegativeSampler(data, seed=1), batch_size=64)
    assert sizes == [64] * (n // 64) + ([n % 64] if n % 64 else [])
    sizes, *_ = epoch_arrays(NegativeSampler(data, seed=1), batch_size=n + 5)
    assert sizes == [n]


def test_same_seed_same_epochs_and_different_seed_differs():
    data = dense_split(free=4)
    a, b, c = (NegativeSampler(data, seed=s) for s in (7, 7, 8))
    for _ in range(2):
        ea, eb, ec = (epoch_arrays(s, 32)[1:] for s in (a, b, c))
        for x, y in zip(ea, eb, strict=True):
            np.testing.assert_array_equal(x, y)
        assert not all(np.array_equal(x, y) for x, y in zip(ea, ec, strict=True))
    first, second = epoch_arrays(NegativeSampler(data, seed=7), 32)[1], epoch_arrays(a, 32)[1]
    assert not np.array_equal(first, second)  # a new epoch is a new shuffle


def test_negatives_are_spread_over_the_free_items():
    data = dense_split(n_users=4, n_items=12, free=4)
    sampler = NegativeSampler(data, seed=0)
    users = np.repeat(np.arange(4), 2000)
    neg = sampler.negatives(users)
    train = set(zip(data.train_users.tolist(), data.train_items.tolist(), strict=True))
    for u in range(4):
        free = [i for i in range(12) if (u, i) not in train and i in set(data.train_items.tolist())]
        counts = Counter(neg[users == u].tolist())
        assert set(counts) == set(free)
        assert min(counts.values()) > 2000 / len(free) * 0.8


def test_a_user_with_every_training_item_is_an_input_error():
    users = np.array([0, 0, 1, 1, 1])
    items = np.array([0, 1, 0, 1, 1])
    labels = np.array([0, 0, 0, 1, 2])
    with pytest.raises(InputError, match="all 2 training items"):
        NegativeSampler(SplitData(2, 2, users, items, labels), seed=0)
