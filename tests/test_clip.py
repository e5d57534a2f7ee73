"""CLIP item encoder through the real from_pretrained(dir) path of a tiny random CLIP."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmknockout.errors import InputError
from mmknockout.features.clip import ClipEncoder
from mmknockout.features.tiny import tiny_clip
from mmknockout.features.vl import Item

TEXTS = ["a red cotton baby blanket", "hi", "", "Sports & Outdoors: café water bottle, 750 ml!", "x y z"]
LONG = "stroller " * 60


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "model")


@pytest.fixture(scope="module")
def reference(clip_dir):
    """The saved model and tokenizer, loaded independently of the encoder."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    return model, AutoTokenizer.from_pretrained(clip_dir), AutoImageProcessor.from_pretrained(clip_dir)


def text_items(texts):
    return [Item(item_id=i, title="", category="", text=t, image=None) for i, t in enumerate(texts)]


def hand_text(reference, text, max_length):
    """End-token hidden state of the text model times the text projection, one unpadded text."""
    model, tokenizer, _ = reference
    ids = tokenizer(text)["input_ids"]
    if len(ids) > max_length:
        ids = ids[: max_length - 1] + [tokenizer.eos_token_id]
    with torch.no_grad():
        hidden = model.text_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        return (hidden[ids.index(tokenizer.eos_token_id)] @ model.text_projection.weight.T).numpy()


def test_text_features_equal_hand_computation(clip_dir, reference):
    enc = ClipEncoder({"model": str(clip_dir), "tower": "text", "batch_size": 2}, "cpu")
    feats = enc.encode(text_items(TEXTS))
    assert feats.shape == (len(TEXTS), 16) and feats.dtype == np.float32
    expected = np.stack([hand_text(reference, t, 77) for t in TEXTS])
    np.testing.assert_allclose(feats, expected, atol=1e-5)
    assert not enc.needs_images
    facts = enc.describe()
    assert facts["max_length"] == 77 and facts["normalize"] is False and facts["tower"] == "text"


@pytest.mark.parametrize("max_length", [77, 8])
def test_long_text_truncated_and_recorded(clip_dir, reference, max_length):
    spec = {"model": str(clip_dir), "tower": "text"} | ({} if max_length == 77 else {"max_length": max_length})
    enc = ClipEncoder(spec, "cpu")
    assert len(reference[1](LONG)["input_ids"]) > 77
    feats = enc.encode(text_items([LONG, LONG + "zebra", "stroller"]))
    np.testing.assert_allclose(feats[0], hand_text(reference, LONG, max_length), atol=1e-5)
    np.testing.assert_allclose(feats[0], feats[1], atol=1e-6)  # the tail beyond the cut is ignored
    assert enc.describe()["max_length"] == max_length


def test_text_batch_and_padding_invariance(clip_dir):
    items = text_items(TEXTS + [LONG])
    batched = ClipEncoder({"model": str(clip_dir), "tower": "text", "batch_size": 16}, "cpu").encode(items)
    single = ClipEncoder({"model": str(clip_dir), "tower": "text", "batch_size": 1}, "cpu").encode(items)
    np.testing.assert_allclose(batched, single, atol=1e-6)


def make_images(folder, n=4):
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.new("RGB", (24 + 8 * i, 40), (60 * i % 256, 200 - 30 * i, 90)).save(p)
        paths.append(p)
    return paths


def test_image_features_equal_hand_computation_and_batch_invariance(clip_dir, reference, tmp_path):
    model, _, processor = reference
    paths = make_images(tmp_path)
    items = [Item(item_id=i, title="", category="", text="", image=p) for i, p in enumerate(paths)]
    enc = ClipEncoder({"model": str(clip_dir), "tower": "image", "batch_size": 3}, "cpu")
    feats = enc.encode(items)
    pixels = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        pooled = model.vision_model(pixel_values=pixels).pooler_output
        expected = (pooled @ model.visual_projection.weight.T).numpy()
    np.testing.assert_allclose(feats, expected, atol=1e-5)
    single = ClipEncoder({"model": str(clip_dir), "tower": "image", "batch_size": 1}, "cpu").encode(items)
    np.testing.assert_allclose(feats, single, atol=1e-6)
    assert enc.needs_images and enc.describe()["max_length"] is None


def test_normalize_gives_unit_rows(clip_dir):
    enc = ClipEncoder({"model": str(clip_dir), "tower": "text", "normalize": True}, "cpu")
    feats = enc.encode(text_items(TEXTS))
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-6)
    assert enc.describe()["normalize"] is True


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"tower": "audio"}, "tower must be one of"),
        ({"tower": "text", "max_length": 100}, "max_length must lie in"),
        ({"tower": "text", "model": "/nonexistent/clip"}, "cannot load CLIP model"),
    ],
)
def test_bad_spec_is_input_error(clip_dir, spec, message):
    with pytest.raises(InputError, match=message):
        ClipEncoder({"model": str(clip_dir)} | spec, "cpu")


def test_unreadable_image_names_file(clip_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    enc = ClipEncoder({"model": str(clip_dir), "tower": "image"}, "cpu")
    with pytest.raises(InputError, match="bad.png"):
        enc.encode([Item(item_id=0, title="", category="", text="", image=bad)])


def test_tiny_clip_is_deterministic(clip_dir, tmp_path):
    again = tiny_clip(tmp_path / "again")
    for name in ("model.safetensors", "vocab.json", "merges.txt", "config.json"):
        assert (again / name).read_bytes() == (clip_dir / name).read_bytes(), name
