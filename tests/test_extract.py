"""Resumable chunked extraction: resume after a kill, mean fill, spec-keyed chunks, atomic output."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmknockout.errors import InputError
from mmknockout.features import extract as extract_mod
from mmknockout.features.extract import chunk_folder, extract
from mmknockout.features.vl import Item

SPEC = {"kind": "fake", "chunk_size": 3}


class Fake:
    """Row of item i is [i, i^2, 1]; records every call; raises on call number ``fail_on`` (1-based)."""

    def __init__(self, needs_images=False, fail_on=None, random=False):
        self.needs_images = needs_images
        self.fail_on = fail_on
        self.random = random
        self.calls = []

    def encode(self, items):
        self.calls.append([it.item_id for it in items])
        if len(self.calls) == self.fail_on:
            raise RuntimeError("killed")
        if self.random:
            return torch.rand(len(items), 4).numpy()
        return np.array([[it.item_id, it.item_id**2, 1.0] for it in items], dtype=np.float32)

    def describe(self):
        return {"model": "fake"}


def items(n=10, images=None):
    images = images or {}
    return [Item(item_id=i, title="", category="", text=f"t{i}", image=images.get(i)) for i in range(n)]


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_resume_after_kill_encodes_only_missing_chunks(tmp_path):
    out = tmp_path / "feat.npy"
    with pytest.raises(RuntimeError, match="killed"):
        extract(Fake(fail_on=3), items(), out, spec=SPEC, show_progress=False)
    assert not out.exists() and len(list(chunk_folder(out).glob("*.npy"))) == 2
    again = Fake()
    matrix, missing, _ = extract(again, items(), out, spec=SPEC, show_progress=False)
    assert again.calls == [[6, 7, 8], [9]] and missing == []
    whole, _, _ = extract(Fake(), items(), tmp_path / "whole.npy", spec=SPEC, show_progress=False)
    np.testing.assert_array_equal(matrix, whole)
    np.testing.assert_array_equal(np.load(out), whole)
    assert not chunk_folder(out).exists() and leftovers(tmp_path) == []


def test_resumed_random_encoder_equals_uninterrupted_run(tmp_path):
    out = tmp_path / "feat.npy"
    with pytest.raises(RuntimeError):
        extract(Fake(fail_on=2, random=True), items(), out, spec=SPEC, show_progress=False)
    resumed, _, _ = extract(Fake(random=True), items(), out, spec=SPEC, show_progress=False)
    whole, _, _ = extract(Fake(random=True), items(), tmp_path / "whole.npy", spec=SPEC, show_progress=False)
    np.testing.assert_array_equal(resumed, whole)


def test_changed_spec_does_not_reuse_chunks(tmp_path):
    out = tmp_path / "feat.npy"
    with pytest.raises(RuntimeError):
        extract(Fake(fail_on=3), items(), out, spec=SPEC, show_progress=False)
    again = Fake()
    extract(again, items(), out, spec=SPEC | {"model": "other"}, show_progress=False)
    assert again.calls == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_changed_item_text_reencodes_only_its_chunk(tmp_path):
    out = tmp_path / "feat.npy"
    with pytest.raises(RuntimeError):
        extract(Fake(fail_on=3), items(), out, spec=SPEC, show_progress=False)
    changed = items()
    changed[4] = Item(item_id=4, title="", category="", text="new text", image=None)
    again = Fake()
    extract(again, changed, out, spec=SPEC, show_progress=False)
    assert again.calls == [[3, 4, 5], [6, 7, 8], [9]]


def test_items_without_readable_image_are_mean_filled(tmp_path):
    good = {}
    for i in (0, 2, 3, 5):
        good[i] = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(good[i])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    enc = Fake(needs_images=True)
    matrix, missing, _ = extract(
        enc, items(6, good | {4: broken}), tmp_path / "f.npy", spec=SPEC | {"chunk_size": 256}, show_progress=False
    )
    assert missing == [1, 4] and enc.calls == [[0, 2, 3, 5]]
    encoded = np.array([[i, i * i, 1] for i in (0, 2, 3, 5)], dtype=np.float32)
    np.testing.assert_allclose(matrix[[1, 4]], [encoded.mean(axis=0)] * 2, rtol=1e-6)
    np.testing.assert_array_equal(matrix[[0, 2, 3, 5]], encoded)
    assert matrix.dtype == np.float32


def test_text_encoder_ignores_images_and_no_image_at_all_is_an_error(tmp_path):
    matrix, missing, _ = extract(Fake(), items(4), tmp_path / "t.npy", spec=SPEC, show_progress=False)
    assert missing == [] and matrix.shape == (4, 3)
    with pytest.raises(InputError, match="none of the 4 items has a readable image"):
        extract(Fake(needs_images=True), items(4), tmp_path / "i.npy", spec=SPEC, show_progress=False)


def test_failed_final_write_leaves_no_output_and_keeps_chunks(tmp_path, monkeypatch):
    out = tmp_path / "feat.npy"
    real = extract_mod.write_npy

    def failing(path, array):
        if path == out:
            raise OSError("disk gone")
        real(path, array)

    monkeypatch.setattr(extract_mod, "write_npy", failing)
    with pytest.raises(OSError, match="disk gone"):
        extract(Fake(), items(), out, spec=SPEC, show_progress=False)
    assert not out.exists() and len(list(chunk_folder(out).glob("*.npy"))) == 4
    monkeypatch.setattr(extract_mod, "write_npy", real)
    again = Fake()
    extract(again, items(), out, spec=SPEC, show_progress=False)
    assert again.calls == [] and out.exists() and leftovers(tmp_path) == []


def test_corrupt_chunk_is_encoded_again(tmp_path):
    out = tmp_path / "feat.npy"
    with pytest.raises(RuntimeError):
        extract(Fake(fail_on=3), items(), out, spec=SPEC, show_progress=False)
    first = sorted(chunk_folder(out).glob("*.npy"))[0]
    first.write_bytes(b"garbage")
    again = Fake()
    extract(again, items(), out, spec=SPEC, show_progress=False)
    assert again.calls == [[0, 1, 2], [6, 7, 8], [9]]


@pytest.mark.parametrize("bad", [np.full((3, 2), np.nan, dtype=np.float32), np.zeros((2, 2), dtype=np.float32)])
def test_bad_encoder_output_is_input_error(tmp_path, bad):
    class Bad(Fake):
        def encode(self, items):
            return bad

    with pytest.raises(InputError, match="non-finite|expected"):
        extract(Bad(), items(3), tmp_path / "f.npy", spec=SPEC, show_progress=False)


class Talker(Fake):
    """A Fake that also generates a text per item, like the LVLM."""

    last_texts: list[str] = []

    def encode(self, items):
        rows = super().encode(items)
        self.last_texts = [f"keywords of {it.item_id}" for it in items]
        return rows


def test_generated_texts_are_kept_per_chunk_and_resumed(tmp_path):
    out = tmp_path / "f.npy"
    with pytest.raises(RuntimeError):
        extract(Talker(fail_on=3), items(), out, spec=SPEC, show_progress=False)
    again = Talker()
    matrix, _, texts = extract(again, items(), out, spec=SPEC, show_progress=False)
    assert again.calls == [[6, 7, 8], [9]]  # the finished chunks' texts came from their files
    assert texts == {i: f"keywords of {i}" for i in range(10)}
    assert extract(Fake(), items(), tmp_path / "g.npy", spec=SPEC, show_progress=False)[2] is None
