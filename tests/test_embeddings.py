"""Embedding statistics on matrices with known structure; the UMAP map is deterministic."""

import math

import numpy as np
import pytest

from mmknockout.analysis import embeddings as emb


def test_effective_rank_of_known_spectra():
    assert emb.effective_rank(np.ones(4)) == pytest.approx(4.0)
    assert emb.effective_rank(np.array([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    s = np.array([4.0, 2.0, 1.0, 1.0])
    p = s / s.sum()
    assert emb.effective_rank(s) == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_singular_values_of_a_constructed_matrix():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((50, 5)))
    v, _ = np.linalg.qr(rng.standard_normal((8, 5)))
    s = np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    x = u @ np.diag(s) @ v.T
    assert np.allclose(emb.singular_values(x)[:5], s)
    assert np.allclose(emb.singular_values(x.T)[:5], s)
    assert emb.effective_rank(emb.singular_values(x)) == pytest.approx(emb.effective_rank(s), rel=1e-6)
    assert emb.top_share(s, 2) == pytest.approx((25 + 9) / (25 + 9 + 4 + 1 + 0.25))


def test_modality_stats_against_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6)) + 2.0
    x[3] = 0.0  # a zero row is excluded
    stats, spectrum = emb.modality_stats(x)
    u = x[np.linalg.norm(x, axis=1) > 0]
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    cos = u @ u.T
    n = len(u)
    assert stats["mean_pairwise_cosine"] == pytest.approx((cos.sum() - n) / (n * (n - 1)))
    assert stats["mean_distance_to_centroid"] == pytest.approx(np.linalg.norm(u - u.mean(0), axis=1).mean())
    s = np.linalg.svd(u - u.mean(0), compute_uv=False)
    assert stats["effective_rank"] == pytest.approx(emb.effective_rank(s), rel=1e-6)
    assert stats["n_zero_rows"] == 1 and stats["dimension"] == 6 and stats["n_items"] == 40
    assert spectrum[0] == pytest.approx(1.0) and np.all(np.diff(spectrum) <= 1e-12)


def test_isotropic_vs_collapsed_modalities():
    rng = np.random.default_rng(2)
    iso, _ = emb.modality_stats(rng.standard_normal((500, 20)))
    collapsed, _ = emb.modality_stats(1.0 + 0.1 * rng.standard_normal((500, 20)))  # noise around a constant
    assert abs(iso["mean_pairwise_cosine"]) < 0.05 and collapsed["mean_pairwise_cosine"] > 0.9
    assert iso["effective_rank"] > 15


def test_sample_is_seeded_and_sorted():
    valid = np.ones(5000, bool)
    valid[::7] = False
    a = emb.sample_items(valid, 100, seed=3)
    assert len(a) == 100 and np.all(np.diff(a) > 0) and valid[a].all()
    assert np.array_equal(a, emb.sample_items(valid, 100, seed=3))
    assert len(emb.sample_items(valid[:50], 100)) == valid[:50].sum()


@pytest.mark.slow  # numba compiles UMAP on first use (about a minute)
def test_joint_map_is_deterministic():
    rng = np.random.default_rng(3)
    text = rng.standard_normal((60, 8)).astype(np.float32)
    image = np.abs(rng.standard_normal((60, 24))).astype(np.float32)
    items = emb.sample_items(np.ones(60, bool), 40, 0)
    a, labels = emb.joint_map(text, image, items, seed=0)
    b, _ = emb.joint_map(text, image, items, seed=0)
    assert a.shape == (80, 2) and list(labels[:1]) == ["text"] and list(labels[-1:]) == ["image"]
    assert np.array_equal(a, b)


def test_build_is_byte_stable(tmp_path, monkeypatch):
    def fake_map(text, image, items, seed=0):  # UMAP itself: test_joint_map_is_deterministic
        rng = np.random.default_rng(seed)
        return rng.standard_normal((2 * len(items), 2)), np.array(["text"] * len(items) + ["image"] * len(items))

    monkeypatch.setattr(emb, "joint_map", fake_map)
    rng = np.random.default_rng(3)
    np.save(tmp_path / "t.npy", rng.standard_normal((60, 8)).astype(np.float32))
    np.save(tmp_path / "i.npy", np.abs(rng.standard_normal((60, 24))).astype(np.float32))
    for run in range(2):
        emb.build(
            text=tmp_path / "t.npy",
            image=tmp_path / "i.npy",
            encoders={"text": "minilm", "image": "upstream"},
            title="Fig. 3",
            sample=40,
            seed=0,
            table=tmp_path / f"s{run}.csv",
            figure=tmp_path / f"f{run}.png",
        )
    assert (tmp_path / "s0.csv").read_bytes() == (tmp_path / "s1.csv").read_bytes()
    assert (tmp_path / "f0.png").read_bytes() == (tmp_path / "f1.png").read_bytes()
    header = (tmp_path / "s0.csv").read_text().splitlines()[0].split(",")
    assert header == emb.STAT_COLUMNS
