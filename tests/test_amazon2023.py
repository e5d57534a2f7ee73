"""Amazon Reviews 2023 adapter on small fixtures shaped like the real jsonl.gz files."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from mmknockout.data import amazon
from mmknockout.data.amazon2023 import image_url, read_metadata, read_reviews
from mmknockout.data.download import load_registry
from mmknockout.data.preprocess import prepare
from mmknockout.errors import InputError
from mmknockout.features.text import item_texts

REVIEW = {
    "rating": 5.0,
    "title": "Great bottle",
    "text": "My baby loves it.<br />Easy to clean.",
    "images": [],
    "asin": "B08VARIANT",
    "parent_asin": "B07PARENT1",
    "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
    "timestamp": 1588687728923,
    "helpful_vote": 2,
    "verified_purchase": True,
}
META = {
    "main_category": "Baby",
    "title": "Anti-colic Baby Bottle, 4 oz",
    "average_rating": 4.6,
    "rating_number": 1201,
    "features": ["BPA free", "Anti-colic vent"],
    "description": ["A bottle for newborns.", "Dishwasher safe."],
    "price": 12.99,
    "images": [
        {"thumb": "https://m.media-amazon.com/images/I/t1.jpg", "large": "https://m.media-amazon.com/images/I/l1.jpg",
         "variant": "PT01", "hi_res": None},
        {"thumb": "https://m.media-amazon.com/images/I/t0.jpg", "large": "https://m.media-amazon.com/images/I/l0.jpg",
         "variant": "MAIN", "hi_res": "https://m.media-amazon.com/images/I/h0.jpg"},
    ],
    "videos": [],
    "store": "Dr. Brown's",
    "categories": ["Baby Products", "Feeding", "Bottle-Feeding", "Bottles"],
    "details": {"Material": "Plastic"},
    "parent_asin": "B07PARENT1",
    "bought_together": None,
}  # fmt: skip


def write_jsonl(path, records):
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for rec in records:
            fh.write((json.dumps(rec) if isinstance(rec, dict) else rec) + "\n")
    return path


def test_reviews_become_the_2014_frame(tmp_path):
    path = write_jsonl(tmp_path / "Baby_Products.jsonl.gz", [REVIEW, {**REVIEW, "user_id": "U2", "rating": 3}])
    df = read_reviews(path)
    assert list(df.columns) == ["userID", "itemID", "rating", "timestamp"]
    assert df["itemID"].tolist() == ["B07PARENT1", "B07PARENT1"]  # the product, not the variant
    assert df["timestamp"].tolist() == [1588687728, 1588687728]  # milliseconds -> seconds
    assert df["rating"].tolist() == [5.0, 3.0]
    pd.testing.assert_frame_equal(amazon.read_ratings(path), df)  # the 2014 entry point dispatches by name


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "line 2 is not JSON"),
        ("[1, 2]", "line 2 is a list"),
        (json.dumps({k: v for k, v in REVIEW.items() if k != "parent_asin"}), "line 2 has no 'parent_asin'"),
        (json.dumps({**REVIEW, "rating": "five"}), "line 2: rating 'five' is not a number"),
    ],
)
def test_bad_review_lines_name_the_line(tmp_path, line, fragment):
    path = write_jsonl(tmp_path / "r.jsonl.gz", [REVIEW, line])
    with pytest.raises(InputError, match=fragment):
        read_reviews(path)


def test_truncated_gzip_is_reported(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl.gz", [REVIEW] * 50)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        read_reviews(path)


def test_metadata_becomes_the_2014_frame_with_the_main_hi_res_image(tmp_path):
    other = {**META, "parent_asin": "B00OTHER01", "images": [], "categories": [], "description": [], "store": None}
    path = write_jsonl(tmp_path / "meta_Baby_Products.jsonl.gz", [META, other])
    meta = read_metadata(path)
    assert meta["asin"].tolist() == ["B07PARENT1", "B00OTHER01"]
    first = meta.iloc[0]
    assert first["imUrl"] == "https://m.media-amazon.com/images/I/h0.jpg"
    assert first["brand"] == "Dr. Brown's"
    assert first["categories"] == [["Baby Products", "Feeding", "Bottle-Feeding", "Bottles"]]
    assert first["description"] == "A bottle for newborns. Dishwasher safe."
    assert pd.isna(meta.iloc[1]["imUrl"]) and pd.isna(meta.iloc[1]["description"])
    pd.testing.assert_frame_equal(amazon.read_metadata(path), meta)
    mapping = pd.DataFrame({"asin": ["B07PARENT1", "B00OTHER01"], "itemID": [0, 1]})
    texts = item_texts(meta, mapping)
    assert texts[0] == "Anti-colic Baby Bottle, 4 oz Dr. Brown's Baby Products Feeding Bottle-Feeding Bottles " + (
        "A bottle for newborns. Dishwasher safe."
    )


def test_image_url_falls_back_to_large_and_first():
    assert image_url([{"large": "l", "hi_res": None, "variant": "PT01"}]) == "l"
    assert image_url([]) is None and image_url(None) is None


def test_metadata_without_parent_asin_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "meta.jsonl.gz", [{"title": "x"}])
    with pytest.raises(InputError, match="line 1 has no 'parent_asin'"):
        read_metadata(path)


def test_split_from_2023_reviews(tmp_path):
    records = [
        {**REVIEW, "user_id": f"U{u}", "parent_asin": f"B0000000{i:02d}", "timestamp": 1_600_000_000_000 + i}
        for u in range(8)
        for i in range(8)
    ]
    path = write_jsonl(tmp_path / "Baby_Products.jsonl.gz", records)
    stats = prepare(path, tmp_path / "out", "baby23", seed=1, k=5)
    assert stats["users"] == 8 and stats["items"] == 8 and stats["interactions"] == 64
    inter = pd.read_csv(tmp_path / "out" / "baby23.inter", sep="\t")
    assert set(inter["rating"]) == {5.0}


def test_registry_lists_the_three_2023_categories():
    registry = load_registry()["datasets"]
    for name, category in (
        ("baby23", "Baby_Products"),
        ("pets23", "Pet_Supplies"),
        ("clothing23", "Clothing_Shoes_and_Jewelry"),
    ):
        files = registry[name]["files"]
        assert files["ratings"]["file"] == f"{category}.jsonl.gz"
        assert files["metadata"]["file"] == f"meta_{category}.jsonl.gz"
        assert files["ratings"]["url"].startswith("https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/")
        assert "image_features" not in files
