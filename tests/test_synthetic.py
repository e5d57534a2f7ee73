"""The demo generator: deterministic, real upstream formats, 5-core statistics in range."""

import hashlib
from pathlib import Path

import pytest

from mmknockout.data.amazon import read_image_features, read_metadata, read_ratings
from mmknockout.data.download import load_registry, sha256sum
from mmknockout.data.preprocess import prepare, read_mapping
from mmknockout.data.synthetic import DEFAULT_SEED, make_demo
from mmknockout.features.text import item_texts

REPO = Path(__file__).resolve().parents[1]
TINY = dict(n_users=120, n_items=60, n_types=6, dim=64)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_demo_deterministic(tmp_path):
    make_demo(tmp_path / "a", seed=3, **TINY)
    make_demo(tmp_path / "b", seed=3, **TINY)
    make_demo(tmp_path / "c", seed=4, **TINY)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["ratings_Demo.csv"] != _digest(tmp_path / "c")["ratings_Demo.csv"]


def test_tiny_demo_formats_and_pipeline(tmp_path):
    s = make_demo(tmp_path, seed=1, n_users=120, n_items=60, n_types=6)
    ratings = read_ratings(tmp_path / "ratings_Demo.csv")
    assert len(ratings) == s["raw_rows"]
    assert ratings["itemID"].str.fullmatch(r"B00[A-Z0-9]{7}").all()
    assert ratings["userID"].str.fullmatch(r"A[A-Z0-9]{13}").all()
    assert ratings["rating"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert ratings.duplicated(["userID", "itemID", "timestamp"]).sum() == s["duplicate_rows"]
    meta = read_metadata(tmp_path / "meta_Demo.json.gz")
    assert {"asin", "title", "brand", "categories", "description", "imUrl", "price"} <= set(meta.columns)
    assert set(ratings["itemID"]) <= set(meta["asin"])
    size = (tmp_path / "image_features_Demo.b").stat().st_size
    assert size == s["image_records"] * (10 + 4 * 4096)

    stats = prepare(tmp_path / "ratings_Demo.csv", tmp_path / "out", "demo", seed=999)
    assert stats["removed_duplicates"] == s["duplicate_rows"] and stats["removed_kcore"] > 0
    mapping = read_mapping(tmp_path / "out" / "i_id_mapping.csv", "item")
    m, missing = read_image_features(
        tmp_path / "image_features_Demo.b", dict(zip(mapping.asin, mapping.itemID, strict=True)), len(mapping)
    )
    assert m.shape == (stats["items"], 4096) and (m >= 0).all()
    assert 0 < (m == 0).mean() < 0.95  # sparse-ish, ReLU-like
    assert missing.size <= s["items_without_image"]
    texts = item_texts(meta, mapping)
    assert len(texts) == stats["items"] and all("Baby" in t for t in texts)


@pytest.mark.skipif(not (REPO / "resources" / "demo" / "ratings_Demo.csv").exists(), reason="demo not generated")
def test_bundled_demo_is_the_generator_output(tmp_path):
    """resources/demo was written by the committed generator with the default seed."""
    make_demo(tmp_path, seed=DEFAULT_SEED)
    bundled = REPO / "resources" / "demo"
    for name in ("ratings_Demo.csv", "meta_Demo.json.gz", "image_features_Demo.b", "README.md"):
        assert sha256sum(tmp_path / name) == sha256sum(bundled / name), name
    reg = load_registry(REPO / "resources" / "datasets.yaml")["datasets"]["demo"]["files"]
    for entry in reg.values():
        assert sha256sum(bundled / entry["file"]) == entry["sha256"]
    total = sum(p.stat().st_size for p in bundled.iterdir())
    assert total < 5_000_000


def test_demo_5core_stats_in_range(tmp_path):
    make_demo(tmp_path, seed=DEFAULT_SEED)
    stats = prepare(tmp_path / "ratings_Demo.csv", tmp_path / "out", "demo", seed=999)
    assert 900 <= stats["users"] <= 1100
    assert 230 <= stats["items"] <= 280
    assert 10_000 <= stats["interactions"] <= 15_000
    assert stats["removed_kcore"] > 0 and stats["removed_duplicates"] > 0
