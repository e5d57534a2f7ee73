"""Downloads with checksums, offline via file:// URLs and local sources."""

import hashlib
from pathlib import Path

import pytest

from mmknockout.data import download
from mmknockout.data.download import (
    DownloadError,
    fetch,
    fetch_dataset,
    fetch_file,
    load_registry,
    verify_sha256,
)
from mmknockout.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _src(tmp_path, data=b"hello ratings\n"):
    p = tmp_path / "src" / "ratings.csv"
    p.parent.mkdir()
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def test_fetch_file_url_with_checksum(tmp_path):
    src, sha = _src(tmp_path)
    dest = tmp_path / "raw" / "ratings.csv"
    assert fetch(src.as_uri(), dest, sha256=sha) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["ratings.csv"]  # no temp files left


def test_checksum_mismatch_leaves_no_file(tmp_path):
    src, sha = _src(tmp_path)
    dest = tmp_path / "raw" / "ratings.csv"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as exc:
        fetch(src.as_uri(), dest, sha256=wrong, retries=1)
    assert wrong in str(exc.value) and sha in str(exc.value)
    assert isinstance(exc.value, InputError)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_stale_file_with_wrong_sum_is_replaced_or_removed(tmp_path):
    src, sha = _src(tmp_path)
    dest = tmp_path / "ratings.csv"
    dest.write_bytes(b"stale")
    fetch(src.as_uri(), dest, sha256=sha)
    assert dest.read_bytes() == src.read_bytes()
    dest.write_bytes(b"stale")
    with pytest.raises(DownloadError):
        fetch(src.as_uri(), dest, sha256="f" * 64)
    assert not dest.exists()


def test_existing_good_file_is_kept(tmp_path, monkeypatch):
    src, sha = _src(tmp_path)
    dest = tmp_path / "ratings.csv"
    dest.write_bytes(src.read_bytes())
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    fetch("http://example.invalid/x", dest, sha256=sha)


def test_retries_then_fails(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(download.time, "sleep", lambda s: calls.append(s))
    with pytest.raises(DownloadError, match="after 3 attempt"):
        fetch((tmp_path / "missing.csv").as_uri(), tmp_path / "out.csv", retries=3, backoff=2.0)
    assert calls == [1.0, 2.0]  # exponential backoff between the 3 attempts
    assert not (tmp_path / "out.csv").exists()


def test_verify_sha256(tmp_path):
    src, sha = _src(tmp_path)
    assert verify_sha256(src, sha) == sha
    assert verify_sha256(src, sha.upper()) == sha
    with pytest.raises(DownloadError, match=f"expected sha256 {'a' * 64}, got {sha}"):
        verify_sha256(src, "a" * 64)


def test_local_source_copy_and_link(tmp_path):
    src, sha = _src(tmp_path)
    dest = fetch_file(
        {"source": "local", "path": "src/ratings.csv", "sha256": sha}, tmp_path / "a.csv", base_dir=tmp_path
    )
    assert dest.read_bytes() == src.read_bytes() and not dest.is_symlink()
    dest = fetch_file({"source": "local", "path": str(src), "sha256": sha, "link": True}, tmp_path / "b.csv")
    assert dest.is_symlink() and dest.read_bytes() == src.read_bytes()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_file({"source": "local", "path": str(src), "sha256": "1" * 64}, tmp_path / "c.csv")
    assert not (tmp_path / "c.csv").exists()
    with pytest.raises(InputError, match="local source file not found"):
        fetch_file({"source": "local", "path": "nope.csv"}, tmp_path / "d.csv", base_dir=tmp_path)


def test_registry_lists_datasets_and_official_names():
    reg = load_registry(REPO / "resources" / "datasets.yaml")
    ds = reg["datasets"]
    assert {"baby", "sports", "clothing", "demo"} <= set(ds)
    assert ds["baby"]["files"]["ratings"]["file"] == "ratings_Baby.csv"
    assert ds["sports"]["files"]["image_features"]["file"] == "image_features_Sports_and_Outdoors.b"
    assert ds["clothing"]["files"]["metadata"]["file"] == "meta_Clothing_Shoes_and_Jewelry.json.gz"
    for name in ("baby", "sports", "clothing"):
        for entry in ds[name]["files"].values():
            assert entry["url"].endswith(entry["file"])
    for entry in ds["demo"]["files"].values():
        assert entry["source"] == "local" and len(entry["sha256"]) == 64


def test_fetch_demo_dataset_offline(tmp_path):
    """The bundled demo files match the checksums recorded in resources/datasets.yaml."""
    got = fetch_dataset("demo", tmp_path)
    assert set(got) == {"ratings", "metadata", "image_features"}
    assert got["ratings"].name == "ratings_Demo.csv" and got["ratings"].exists()


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        fetch_dataset("nope", "/tmp/unused")
