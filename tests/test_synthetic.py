"""The demo generator: deterministic, real upstream formats, 5-core statistics in range."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmknockout.data.amazon import read_image_features, read_metadata, read_ratings
from mmknockout.data.download import load_registry, sha256sum
from mmknockout.data.images import download_step
from mmknockout.data.preprocess import prepare, read_mapping
from mmknockout.data.synthetic import DEFAULT_SEED, make_demo
from mmknockout.features.text import item_texts

REPO = Path(__file__).resolve().parents[1]
TINY = dict(n_users=120, n_items=60, n_types=6, dim=64)


def _digest(folder):
    """sha256 of every file under ``folder`` (images/ included), by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_tiny_demo_deterministic(tmp_path):
    make_demo(tmp_path / "a", seed=3, **TINY)
    make_demo(tmp_path / "b", seed=3, **TINY)
    make_demo(tmp_path / "c", seed=4, **TINY)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["ratings_Demo.csv"] != _digest(tmp_path / "c")["ratings_Demo.csv"]
    assert any(name.startswith("images/") for name in _digest(tmp_path / "a"))


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
    assert _digest(tmp_path) == _digest(bundled)  # the data files, README.md and every image
    reg = load_registry(REPO / "resources" / "datasets.yaml")["datasets"]["demo"]["files"]
    for entry in reg.values():
        assert sha256sum(bundled / entry["file"]) == entry["sha256"]
    total = sum(p.stat().st_size for p in bundled.rglob("*") if p.is_file())
    assert total < 5_000_000


def _foreground_colour(path: Path) -> np.ndarray:
    """Mean colour of the pixels that differ clearly from the image's corner (the background)."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    shape = np.abs(pixels - pixels[0, 0]).sum(-1) > 60
    return pixels[shape].mean(0)


def test_demo_images_exist_decode_differ_by_type_and_vary_per_item(tmp_path):
    s = make_demo(tmp_path, seed=2, **TINY)
    meta = read_metadata(tmp_path / "meta_Demo.json.gz")
    names = meta["imUrl"].str.extract(r"^file:resources/demo/images/([A-Z0-9]+\.png)$")[0]
    assert names.notna().all() and len(set(names)) == len(meta) == s["images"]
    files = {p.name: p for p in (tmp_path / "images").iterdir()}
    assert set(files) == set(names)
    for p in files.values():
        with Image.open(p) as image:
            assert image.format == "PNG" and image.size == (64, 64)
    types = meta["categories"].map(lambda paths: paths[0][1])  # the type's category under "Baby"
    colours = {t: [_foreground_colour(files[n]) for n in names[types == t]] for t in sorted(set(types))}
    means = {t: np.mean(c, 0) for t, c in colours.items()}
    assert len(means) == TINY["n_types"]
    for a in means:
        for b in means:
            assert a == b or np.abs(means[a] - means[b]).sum() > 40, (a, b)
    per_type_bytes = {t: {files[n].read_bytes() for n in names[types == t]} for t in means}
    assert all(len(v) == (types == t).sum() for t, v in per_type_bytes.items())  # no two items alike


@pytest.mark.skipif(not (REPO / "resources" / "demo" / "images").is_dir(), reason="demo not generated")
def test_bundled_demo_images_download_through_the_workflow_step(tmp_path):
    bundled = REPO / "resources" / "demo"
    prepare(bundled / "ratings_Demo.csv", tmp_path / "split", "demo", seed=999)
    files = {"metadata": str(bundled / "meta_Demo.json.gz"), "item_map": str(tmp_path / "split" / "i_id_mapping.csv")}
    schemes = load_registry(REPO / "resources" / "datasets.yaml")["datasets"]["demo"]["image_schemes"]
    download_step(
        **files,
        images=str(tmp_path / "img"),
        index=str(tmp_path / "i.tsv"),
        failures=str(tmp_path / "f"),
        schemes=schemes,
    )
    index = pd.read_csv(tmp_path / "i.tsv", sep="\t")
    assert index["path"].notna().all() and (tmp_path / "f").read_text() == ""
    url = read_metadata(bundled / "meta_Demo.json.gz").set_index("asin")["imUrl"][index["asin"][0]]
    assert Path(index["path"][0]).read_bytes() == (REPO / url.removeprefix("file:")).read_bytes()
    # other datasets' metadata: file URLs stay refused
    download_step(**files, images=str(tmp_path / "img2"), index=str(tmp_path / "j.tsv"), failures=str(tmp_path / "g"))
    assert "refused: URL scheme 'file'" in (tmp_path / "g").read_text()


def test_demo_5core_stats_in_range(tmp_path):
    make_demo(tmp_path, seed=DEFAULT_SEED)
    stats = prepare(tmp_path / "ratings_Demo.csv", tmp_path / "out", "demo", seed=999)
    assert 900 <= stats["users"] <= 1100
    assert 230 <= stats["items"] <= 280
    assert 10_000 <= stats["interactions"] <= 15_000
    assert stats["removed_kcore"] > 0 and stats["removed_duplicates"] > 0
