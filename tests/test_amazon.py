"""Parsers of the Amazon 2014 files: ratings CSV, metadata json.gz, image-feature .b."""

import gzip

import numpy as np
import pytest

from mmknockout.data.amazon import read_image_features, read_metadata, read_ratings, write_image_features
from mmknockout.errors import InputError


def test_read_ratings_columns_and_types(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("A1,B001,5.0,1300000000\nA2,B002,3.0,1300000001\n\nA3,,4.0,1300000002\n")
    df = read_ratings(p)
    assert list(df.columns) == ["userID", "itemID", "rating", "timestamp"]
    assert len(df) == 3
    assert df["rating"].tolist() == [5.0, 3.0, 4.0]
    assert df["timestamp"].iloc[0] == 1300000000
    assert df["itemID"].isna().tolist() == [False, False, True]


def test_read_ratings_missing_file(tmp_path):
    with pytest.raises(InputError, match="ratings file not found"):
        read_ratings(tmp_path / "nope.csv")


def test_read_ratings_bad_number_names_line(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("A1,B001,5.0,1300000000\n\nA2,B002,five,1300000001\n")
    with pytest.raises(InputError, match=r"line 3: rating 'five'"):
        read_ratings(p)


def test_read_ratings_too_many_fields(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("A1,B001,5.0,1300000000\nA2,B002,3.0,1300000001,extra\n")
    with pytest.raises(InputError, match="line 2"):
        read_ratings(p)


def test_read_ratings_fractional_timestamp(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("A1,B001,5.0,1300000000.5\n")
    with pytest.raises(InputError, match="line 1: timestamp"):
        read_ratings(p)


def _write_meta(path, lines):
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def test_read_metadata_python_literals(tmp_path):
    p = tmp_path / "meta.json.gz"
    _write_meta(
        p,
        [
            "{'asin': 'B001', 'title': 'Stroller', 'categories': [['Baby', 'Strollers']], 'price': 9.5}",
            "{'asin': 'B002', 'brand': \"Tot's\", 'imUrl': 'http://x/y.jpg'}",
        ],
    )
    df = read_metadata(p)
    assert df["asin"].tolist() == ["B001", "B002"]
    assert df.loc[0, "categories"] == [["Baby", "Strollers"]]
    assert df.loc[1, "brand"] == "Tot's"
    assert df["title"].isna().tolist() == [False, True]


def test_read_metadata_bad_literal_names_line(tmp_path):
    p = tmp_path / "meta.json.gz"
    _write_meta(p, ["{'asin': 'B001'}", "{'asin': 'B002', 'title': __import__('os')}"])
    with pytest.raises(InputError, match="line 2 is not a Python literal"):
        read_metadata(p)


def test_read_metadata_not_a_dict(tmp_path):
    p = tmp_path / "meta.json.gz"
    _write_meta(p, ["{'asin': 'B001'}", "['B002']"])
    with pytest.raises(InputError, match="line 2 is a list"):
        read_metadata(p)


def test_read_metadata_corrupt_gzip(tmp_path):
    p = tmp_path / "meta.json.gz"
    _write_meta(p, [f"{{'asin': 'B{i:03d}', 'title': 'item {i}'}}" for i in range(2000)])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated stream
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        read_metadata(p)
    p.write_bytes(b"this is not gzip at all")
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        read_metadata(p)


def test_read_metadata_missing_file(tmp_path):
    with pytest.raises(InputError, match="metadata file not found"):
        read_metadata(tmp_path / "meta.json.gz")


def test_image_features_round_trip_and_mean_fill(tmp_path):
    dim = 8
    rng = np.random.default_rng(0)
    feats = rng.random((4, dim)).astype(np.float32)
    p = tmp_path / "img.b"
    # records: B0 -> item 2, XX (unknown, skipped), B1 -> item 0, B3 -> item 3; item 1 has no record
    write_image_features(p, ["B000000000", "XXXXXXXXXX", "B000000001", "B000000003"], feats)
    assert p.stat().st_size == 4 * (10 + 4 * dim)
    mapping = {"B000000000": 2, "B000000001": 0, "B000000002": 1, "B000000003": 3}
    m, missing = read_image_features(p, mapping, n_items=4, dim=dim)
    assert m.dtype == np.float32 and m.shape == (4, dim)
    np.testing.assert_array_equal(m[2], feats[0])
    np.testing.assert_array_equal(m[0], feats[2])
    np.testing.assert_array_equal(m[3], feats[3])
    np.testing.assert_allclose(m[1], feats[[0, 2, 3]].mean(axis=0), rtol=1e-6)
    assert missing.tolist() == [1]
    # small chunks give the same result
    m2, _ = read_image_features(p, mapping, n_items=4, dim=dim, chunk_records=1)
    np.testing.assert_array_equal(m, m2)


def test_image_features_little_endian_layout(tmp_path):
    p = tmp_path / "img.b"
    p.write_bytes(b"B000000001" + np.array([1.5, -2.0], dtype="<f4").tobytes())
    m, missing = read_image_features(p, {"B000000001": 0}, n_items=1, dim=2)
    assert m.tolist() == [[1.5, -2.0]] and missing.size == 0


def test_image_features_truncated(tmp_path):
    p = tmp_path / "img.b"
    write_image_features(p, ["B000000001", "B000000002"], np.ones((2, 4), np.float32))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(InputError, match="truncated image-feature file.*record 1"):
        read_image_features(p, {"B000000001": 0}, n_items=1, dim=4)


def test_image_features_no_match(tmp_path):
    p = tmp_path / "img.b"
    write_image_features(p, ["B000000001"], np.ones((1, 4), np.float32))
    with pytest.raises(InputError, match="none of its 1 records"):
        read_image_features(p, {"OTHER00000": 0}, n_items=1, dim=4)


def test_image_features_missing_file(tmp_path):
    with pytest.raises(InputError, match="image feature file not found"):
        read_image_features(tmp_path / "x.b", {}, n_items=1)
