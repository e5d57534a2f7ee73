"""RQ-VAE codes, reconstruction of planted clusters, the de-duplication digit, code statistics, AMI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from mmknockout.errors import InputError
from mmknockout.genrec.rqvae import RQVAE, RQVAEConfig, dedup_digit, train_rqvae
from mmknockout.genrec.stats import adjusted_mutual_info, code_stats, collision_stats, unique_prefix_rate

SMALL = RQVAEConfig(hidden=(32,), latent=8, levels=3, codebook_size=8, batch_size=64, steps=300, learning_rate=3e-3)


def planted(n_per=30, clusters=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (clusters, dim))
    labels = np.repeat(np.arange(clusters), n_per)
    return (centres[labels] + rng.normal(0, 0.1, (len(labels), dim))).astype(np.float32), labels


def test_codes_in_range_and_planted_clusters_separate():
    x, labels = planted()
    codes, losses = train_rqvae(x, SMALL, seed=0)
    assert codes.shape == (len(x), 3) and codes.min() >= 0 and codes.max() < SMALL.codebook_size
    assert losses[-1] < losses[0]
    assert adjusted_mutual_info_score(labels, codes[:, 0]) > 0.9  # the first level finds the planted clusters


def test_quantise_residual_equations():
    torch.manual_seed(0)
    cfg = RQVAEConfig(hidden=(8,), latent=4, levels=2, codebook_size=3, beta=0.5)
    model = RQVAE(6, cfg)
    z = torch.randn(5, 4)
    codes, z_q, loss = model.quantise(z)
    books = model.codebooks.detach().numpy()
    r, expected_q, expected_loss = z.numpy(), np.zeros((5, 4)), 0.0
    for level in range(2):
        d = ((r[:, None, :] - books[level][None]) ** 2).sum(2)
        c = d.argmin(1)
        np.testing.assert_array_equal(codes[:, level].numpy(), c)
        e = books[level][c]
        expected_loss += (1 + cfg.beta) * ((r - e) ** 2).sum(1).mean()
        expected_q += e
        r = r - e
    np.testing.assert_allclose(z_q.detach().numpy(), expected_q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(loss.detach()), expected_loss, rtol=1e-5)


def test_straight_through_gradient_reaches_encoder():
    x, _ = planted(n_per=10)
    model = RQVAE(x.shape[1], SMALL)
    loss, _ = model(torch.as_tensor(x))
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0 and model.codebooks.grad.abs().sum() > 0


def test_kmeans_init_puts_codebook_on_the_data():
    x, _ = planted(n_per=20, clusters=8)
    model = RQVAE(x.shape[1], SMALL)
    model.kmeans_init(torch.as_tensor(x), seed=0)
    z = model.encoder(torch.as_tensor(x)).detach()
    nearest = torch.cdist(z, model.codebooks[0].detach()).min(1).values
    assert float(nearest.mean()) < float(torch.cdist(z, z).mean())  # centroids sit among the latents


def test_dedup_digit_sized_to_the_largest_group():
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4], [0, 0]])
    digit, size = dedup_digit(codes)
    assert digit.tolist() == [0, 1, 0, 2, 1, 0] and size == 3
    assert len(np.unique(np.column_stack([codes, digit]), axis=0)) == len(codes)


def test_constant_features_collapse_onto_one_prefix_and_dedup_keeps_ids_unique():
    x = np.ones((40, 16), dtype=np.float32)
    codes, _ = train_rqvae(x, SMALL, seed=0)
    assert unique_prefix_rate(codes) == [1 / 40] * 3
    digit, size = dedup_digit(codes)
    assert size == 40  # the digit needs one value per item, more than the codebook size
    assert len(np.unique(np.column_stack([codes, digit]), axis=0)) == 40


def test_codebook_larger_than_catalogue_is_refused():
    with pytest.raises(InputError, match="codebook_size 8 exceeds the number of items 5"):
        train_rqvae(np.zeros((5, 3), np.float32), SMALL, seed=0)


def test_collision_stats_and_prefix_rate():
    codes = np.array([[0, 1, 2], [0, 1, 2], [0, 2, 2], [1, 0, 0]])
    assert unique_prefix_rate(codes) == [0.5, 0.75, 0.75]
    assert collision_stats(codes) == {"distinct_ids": 3, "colliding_items": 2, "collision_rate": 0.5, "max_group": 2}
    stats = code_stats(codes, categories=np.array([0, 0, 0, 1]))
    assert stats["ami_category"] == pytest.approx(1.0) and stats["first_code_clusters"] == 2


@pytest.mark.parametrize(
    "n,ka,kb,seed",
    [(40, 3, 4, 0), (200, 10, 1, 1), (30, 1, 1, 2), (500, 20, 30, 3), (100, 100, 5, 4), (600, 64, 64, 5)],
)
def test_ami_equals_scikit_learn(n, ka, kb, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, ka, n), rng.integers(0, kb, n)
    if seed == 3:
        b = (a + rng.integers(0, 2, n)) % kb  # dependent labelings
    assert adjusted_mutual_info(a, b) == pytest.approx(adjusted_mutual_info_score(a, b), abs=1e-9)
