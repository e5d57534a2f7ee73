"""User-user and item-item co-occurrence graphs against a brute-force dense computation."""

import numpy as np
import pytest

from mmknockout.data import graphs
from mmknockout.data.dataset import TEST, TRAIN, VALID, SplitData


def _brute_force(r: np.ndarray, k: int, min_count: int = 1):
    """Dense R·Rᵀ, self excluded, counts >= min_count, sorted by count desc then id asc, top k."""
    c = r @ r.T
    n = c.shape[0]
    ids = np.full((n, k), -1)
    w = np.zeros((n, k), dtype=np.float32)
    for a in range(n):
        cand = [(-c[a, b], b) for b in range(n) if b != a and c[a, b] >= min_count and c[a, b] > 0]
        for j, (negc, b) in enumerate(sorted(cand)[:k]):
            ids[a, j], w[a, j] = b, -negc
    return ids, w


def _random_split(seed, n_users=30, n_items=20, density=0.3):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    u, i = np.nonzero(dense)
    labels = rng.choice([TRAIN, TRAIN, TRAIN, VALID, TEST], size=u.size)
    return SplitData(n_users, n_items, u, i, labels, name="rand")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 50])
def test_user_graph_matches_brute_force(seed, k):
    data = _random_split(seed)
    r = data.train_matrix.toarray()
    ids, w = _brute_force(r, k)
    g = graphs.user_graph(data, k=k)
    np.testing.assert_array_equal(g.ids, ids)
    np.testing.assert_array_equal(g.weights, w)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k,min_count", [(2, 2), (5, 1), (3, 3)])
def test_item_graph_matches_brute_force(seed, k, min_count):
    data = _random_split(seed)
    r = data.train_matrix.toarray()
    ids, w = _brute_force(r.T, k, min_count)
    g = graphs.item_graph(data, k=k, min_count=min_count)
    np.testing.assert_array_equal(g.ids, ids)
    np.testing.assert_array_equal(g.weights, w)


def test_blocks_do_not_change_the_result():
    data = _random_split(5, n_users=50)
    a = graphs.cooccurrence_topk(data.train_matrix, 7, block=4096)
    b = graphs.cooccurrence_topk(data.train_matrix, 7, block=3)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_only_training_interactions_count():
    # users 0 and 1 share item 0 in train and item 1 only through a test interaction
    data = SplitData(
        3, 2, np.array([0, 1, 0, 1, 2]), np.array([0, 0, 1, 1, 1]), np.array([TRAIN, TRAIN, TRAIN, TEST, TRAIN])
    )
    g = graphs.user_graph(data, k=2)
    assert g.ids[1].tolist() == [0, -1] and g.weights[1].tolist() == [1.0, 0.0]
    assert g.ids[0].tolist() == [1, 2]  # tie (1 shared item each): lower id first


def test_save_and_load(tmp_path):
    from mmknockout.data.dataset import NeighbourGraph

    g = graphs.user_graph(_random_split(0), k=4)
    graphs.save_graph(g, tmp_path / "g.npz")
    back = NeighbourGraph.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(back.ids, g.ids)
    np.testing.assert_array_equal(back.weights, g.weights)
