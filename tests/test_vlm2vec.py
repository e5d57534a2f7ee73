"""VLM2Vec encoder through the real from_pretrained(dir) path of a tiny random Qwen2-VL and a tiny LoRA."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmknockout.errors import InputError
from mmknockout.features.tiny_qwen import tiny_lora, tiny_qwen2_vl
from mmknockout.features.vl import Item
from mmknockout.features.vlm2vec import Vlm2VecEncoder, load_image

GOLDEN = {
    "visual": "<|image_pad|>",
    "textual": "Soft Blanket, category: Bedding",
    "prompt1": "<|image_pad|>\nSoft Blanket, category: Bedding\nGenerate a unified representation for this product.",
    "prompt2": (
        "You are analyzing a product for retrieval purposes. Here is the product image:\n<|image_pad|>\n"
        "Product details: Soft Blanket, category: Bedding\nGenerate a unified representation for this product."
    ),
}


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return tiny_qwen2_vl(tmp_path_factory.mktemp("qwen") / "model")


@pytest.fixture(scope="module")
def lora_dir(qwen_dir, tmp_path_factory):
    pytest.importorskip("peft")
    return tiny_lora(qwen_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """Three items with images of different sizes (one under 28 px) and texts of different lengths."""
    folder = tmp_path_factory.mktemp("images")
    sizes = [(56, 56), (20, 20), (84, 56)]
    colours = [(200, 30, 30), (20, 160, 40), (10, 10, 220)]
    titles = [("Soft Blanket", "Bedding"), ("Bottle", ""), ("Red cotton dress for a casual day out", "Dresses")]
    out = []
    for i, (size, colour, (title, category)) in enumerate(zip(sizes, colours, titles, strict=True)):
        path = folder / f"{i}.png"
        Image.new("RGB", size, colour).save(path)
        out.append(Item(item_id=i, title=title, category=category, text=f"{title} text", image=path))
    return out


def encoder(qwen_dir, strategy, **spec):
    return Vlm2VecEncoder({"model": str(qwen_dir), "strategy": strategy, **spec}, "cpu")


def hand_embedding(model, qwen_dir, text, image):
    """Last-layer hidden state at the last token of one unpadded input, L2-normalised, built by hand."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(qwen_dir)
    inputs = {}
    if image is not None:
        pixels = Qwen2VLImageProcessorPil.from_pretrained(qwen_dir)(images=[image], return_tensors="pt")
        text = text.replace("<|image_pad|>", "<|image_pad|>" * (int(pixels["image_grid_thw"].prod()) // 4))
        inputs.update(pixels)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    inputs.update(input_ids=ids, mm_token_type_ids=(ids == model.config.image_token_id).long())
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1][0, -1]
    return torch.nn.functional.normalize(hidden, dim=0).numpy()


@pytest.mark.parametrize("strategy", sorted(GOLDEN))
def test_prompt_strings_are_the_papers(qwen_dir, items, strategy):
    enc = encoder(qwen_dir, strategy)
    assert enc.prompt(items[0]) == GOLDEN[strategy]
    assert enc.describe()["strategy"] == strategy
    assert enc.needs_images == (strategy != "textual")


def test_textual_prompt_with_missing_category(qwen_dir, items):
    assert encoder(qwen_dir, "textual").prompt(items[1]) == "Bottle, category: "


@pytest.mark.parametrize("strategy", ["prompt2", "textual"])
def test_output_is_normalised_last_token_state(qwen_dir, items, strategy):
    from transformers import Qwen2VLForConditionalGeneration

    got = encoder(qwen_dir, strategy, batch_size=3).encode(items)
    assert got.dtype == np.float32 and got.shape == (3, 32)
    model = Qwen2VLForConditionalGeneration.from_pretrained(qwen_dir).eval()
    for row, item in zip(got, items, strict=True):
        image = load_image(item.image) if strategy != "textual" else None
        want = hand_embedding(model, qwen_dir, encoder_prompt(strategy, item), image)
        np.testing.assert_allclose(row, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def encoder_prompt(strategy, item):
    text = f"{item.title}, category: {item.category}"
    return GOLDEN[strategy].replace("Soft Blanket, category: Bedding", text)


@pytest.mark.parametrize("strategy", ["prompt1", "textual"])
def test_padding_side_and_batching_do_not_change_vectors(qwen_dir, items, strategy):
    right = encoder(qwen_dir, strategy, batch_size=3, padding_side="right").encode(items)
    left = encoder(qwen_dir, strategy, batch_size=3, padding_side="left").encode(items)
    single = encoder(qwen_dir, strategy, batch_size=1).encode(items)
    np.testing.assert_allclose(left, right, atol=1e-5)
    np.testing.assert_allclose(single, right, atol=1e-5)
    assert not np.allclose(right[0], right[2], atol=1e-3)


def test_textual_ignores_images(qwen_dir, items):
    enc = encoder(qwen_dir, "textual")
    without = [Item(i.item_id, i.title, i.category, i.text, None) for i in items]
    np.testing.assert_array_equal(enc.encode(items), enc.encode(without))


def test_visual_sees_the_image_only(qwen_dir, items):
    enc = encoder(qwen_dir, "visual")
    renamed = [Item(i.item_id, "Other title", "Other", "other", i.image) for i in items]
    first, second = enc.encode(items), enc.encode(renamed)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[2], atol=1e-3)


def test_small_images_resized_to_56(items):
    assert load_image(items[1].image).size == (56, 56)
    assert load_image(items[2].image).size == (84, 56)


def test_adapter_is_merged_and_matches_peft_forward(qwen_dir, lora_dir, items):
    from peft import PeftModel
    from transformers import Qwen2VLForConditionalGeneration

    base = encoder(qwen_dir, "prompt1").encode(items)
    enc = encoder(qwen_dir, "prompt1", adapter=str(lora_dir))
    merged = enc.encode(items)
    assert enc.describe()["adapter_merged"] is True
    assert np.abs(merged - base).max() > 1e-3
    peft_model = PeftModel.from_pretrained(Qwen2VLForConditionalGeneration.from_pretrained(qwen_dir), lora_dir).eval()
    for row, item in zip(merged, items, strict=True):
        want = hand_embedding(peft_model, qwen_dir, encoder_prompt("prompt1", item), load_image(item.image))
        np.testing.assert_allclose(row, want, atol=1e-5)


def test_adapter_without_peft_is_a_clear_error(qwen_dir, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(InputError, match=r"spec.adapter .*peft"):
        encoder(qwen_dir, "visual", adapter=str(tmp_path))


def test_describe_records_the_settings(qwen_dir):
    facts = encoder(qwen_dir, "prompt2", dtype="float32", batch_size=2).describe()
    assert facts["prompt"] == GOLDEN["prompt2"].replace("Soft Blanket, category: Bedding", "{text}")
    assert (facts["dtype"], facts["batch_size"], facts["dim"], facts["chat_template"]) == ("float32", 2, 32, False)
    assert "last non-pad token" in facts["pooling"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"strategy": "dual"}, "spec.strategy"),
        ({"strategy": "visual", "dtype": "int8"}, "spec.dtype"),
        ({"strategy": "visual", "batch_size": 0}, "spec.batch_size"),
        ({"strategy": "visual", "padding_side": "middle"}, "spec.padding_side"),
    ],
)
def test_bad_spec_names_the_field(qwen_dir, spec, match):
    with pytest.raises(InputError, match=match):
        Vlm2VecEncoder({"model": str(qwen_dir), **spec}, "cpu")


def test_missing_model_and_image_are_input_errors(qwen_dir, items, tmp_path):
    with pytest.raises(InputError, match="spec.model"):
        Vlm2VecEncoder({"model": str(tmp_path / "absent"), "strategy": "visual"}, "cpu")
    enc = encoder(qwen_dir, "visual")
    with pytest.raises(InputError, match="item 7"):
        enc.encode([Item(7, "t", "c", "x", None)])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(InputError, match="broken.png"):
        enc.encode([Item(8, "t", "c", "x", broken)])


def test_built_through_the_kinds_registry(qwen_dir):
    from mmknockout.features.vl import build_encoder

    enc = build_encoder({"kind": "vlm2vec", "model": str(qwen_dir), "strategy": "textual"}, "cpu")
    assert isinstance(enc, Vlm2VecEncoder) and not enc.needs_images
