"""LVLM [EOS] encoder through the real from_pretrained(dir) path of a tiny random Qwen2-VL."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmknockout.errors import InputError
from mmknockout.features.lvlm import DOMAIN_PROMPTS, VISION_TOKENS, LvlmEncoder
from mmknockout.features.tiny_qwen import tiny_qwen2_vl
from mmknockout.features.vl import Item
from mmknockout.features.vlm2vec import load_image

GOLDEN = {
    "baby": (
        "Imagine you’re creating metadata for an image database of baby products. Your task is to select five "
        "keywords that best represent the image content. Fill in the blanks: [Category], [Age Group], [Purpose], "
        "[Material], [Usage Context]. For example, your answer will be: [Category] {Feeding}, [Age Group] {Infant}, "
        "[Purpose] {Hygiene}, [Material] {Silicone}, [Usage Context] {Home}."
    ),
    "pets": (
        "Imagine you’re creating metadata for an image database of pet-related items. Your task is to select five "
        "keywords that best represent the image content. Fill in the blanks: [Category], [Pet Type], [Purpose], "
        "[Material], [Usage Context]. For example, your answer will be: [Category] {Toys}, [Pet Type] {Dog}, "
        "[Purpose] {Entertainment}, [Material] {Rubber}, [Usage Context] {Outdoor}."
    ),
    "clothing": (
        "Imagine you're creating metadata for an image database of clothing items. Your task is to select five "
        "keywords that best represent the image content. Fill in the blanks: [Type], [Color], [Wear Location], "
        "[Material], [Style]. For example, your answer will be: [Type] {dress}, [Color] {red}, [Wear Location] "
        "{torso}, [Material] {cotton}, [Style] {casual}."
    ),
}
STEPS = 5


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return tiny_qwen2_vl(tmp_path_factory.mktemp("qwen") / "model")


@pytest.fixture(scope="module")
def reference(qwen_dir):
    """The saved model, tokenizer and image processor, loaded independently of the encoder."""
    from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    model = Qwen2VLForConditionalGeneration.from_pretrained(qwen_dir).eval()
    return model, AutoTokenizer.from_pretrained(qwen_dir), Qwen2VLImageProcessorPil.from_pretrained(qwen_dir)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, (size, colour) in enumerate([((56, 56), (220, 20, 20)), ((84, 56), (20, 200, 20)), ((20, 20), (0, 0, 250))]):
        Image.new("RGB", size, colour).save(folder / f"{i}.png")
        out.append(Item(item_id=i, title=f"t{i}", category="c", text="x", image=folder / f"{i}.png"))
    return out


def encoder(qwen_dir, eos="generated", **spec):
    return LvlmEncoder({"model": str(qwen_dir), "domain": "baby", "eos": eos, "max_new_tokens": STEPS, **spec}, "cpu")


def hand_generate(reference, prompt, image, eos_ids):
    """Single unpadded input: greedy new token ids up to and including the first end-of-sequence token."""
    model, tokenizer, image_processor = reference
    pixels = image_processor(images=[image], return_tensors="pt")
    text = prompt.replace("<|image_pad|>", "<|image_pad|>" * (int(pixels["image_grid_thw"].prod()) // 4))
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    banned = [[tokenizer.convert_tokens_to_ids(t)] for t in VISION_TOKENS]
    kwargs = dict(pixels, mm_token_type_ids=(ids == model.config.image_token_id).long())
    out = model.generate(
        input_ids=ids,
        **kwargs,
        max_new_tokens=STEPS,
        do_sample=False,
        bad_words_ids=banned,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    new = out[0, ids.shape[1] :].tolist()
    stops = [i for i, token in enumerate(new) if token in eos_ids]
    return ids, new[: stops[0] + 1] if stops else new, kwargs


def stop_token(reference, prompt, items, eos_ids):
    """A token item 0 generates that another item does not generate as early: stopping there ends them apart."""
    rows = [hand_generate(reference, prompt, load_image(item.image), eos_ids)[1] for item in items]
    for step, token in enumerate(rows[0]):
        if token not in rows[0][:step] and any(token not in row[: step + 1] for row in rows[1:]):
            return token
    raise AssertionError(f"the tiny model generates the same tokens for every image: {rows}")


def hand_state(reference, ids, new, kwargs, eos):
    """Last-layer hidden state at the last position of prompt (+ generated tokens), one forward."""
    model = reference[0]
    if eos == "generated":
        ids = torch.cat([ids, torch.tensor([new])], dim=1)
        kwargs = dict(kwargs, mm_token_type_ids=(ids == model.config.image_token_id).long())
    with torch.no_grad():
        return model(input_ids=ids, **kwargs, output_hidden_states=True).hidden_states[-1][0, -1].numpy()


@pytest.mark.parametrize("domain", sorted(GOLDEN))
def test_domain_prompts_are_the_authors(qwen_dir, domain):
    assert DOMAIN_PROMPTS[domain] == GOLDEN[domain]
    enc = encoder(qwen_dir, domain=domain)
    want = f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{GOLDEN[domain]}<|im_end|>\n"
    assert enc.input_text == want + "<|im_start|>assistant\n"
    assert enc.describe()["prompt"] == GOLDEN[domain] and enc.describe()["input"] == enc.input_text


def test_task_misaligned_prompt_is_a_control(qwen_dir, items):
    enc = encoder(qwen_dir, prompt="misaligned")
    rocket = (
        "You are a computer scientist. Describe in fewer than 30 words how you can use this instrument for "
        "building a rocket."
    )
    assert enc.describe()["prompt"] == rocket and enc.describe()["prompt_kind"] == "misaligned"
    assert rocket in enc.input_text and GOLDEN["baby"] not in enc.input_text
    assert not np.allclose(enc.encode(items[:1]), encoder(qwen_dir).encode(items[:1]))


@pytest.mark.parametrize("early_stop", [False, True])
@pytest.mark.parametrize("eos", ["generated", "prompt"])
def test_eos_reading_is_the_documented_position(qwen_dir, reference, items, eos, early_stop):
    enc = encoder(qwen_dir, eos=eos, batch_size=3)
    eos_ids = [reference[1].convert_tokens_to_ids("<|im_end|>")]
    if early_stop:  # rows of one batch end at different steps
        eos_ids = [stop_token(reference, enc.input_text, items, eos_ids)]
        enc.qwen.model.generation_config.eos_token_id = eos_ids
    matrix, texts = enc.encode_with_texts(items)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 32) and np.isfinite(matrix).all()
    lengths = []
    for row, text, item in zip(matrix, texts, items, strict=True):
        ids, new, kwargs = hand_generate(reference, enc.input_text, load_image(item.image), eos_ids)
        lengths.append(len(new))
        np.testing.assert_allclose(row, hand_state(reference, ids, new, kwargs, eos), atol=1e-5)
        assert text == reference[1].decode([t for t in new if t not in eos_ids], skip_special_tokens=True).strip()
    if early_stop:
        assert min(lengths) < max(lengths)


def test_readings_differ_and_are_recorded(qwen_dir, items):
    generated, prompt = encoder(qwen_dir, "generated"), encoder(qwen_dir, "prompt")
    assert not np.allclose(generated.encode(items[:1]), prompt.encode(items[:1]), atol=1e-4)
    assert (generated.describe()["eos"], prompt.describe()["eos"]) == ("generated", "prompt")
    assert prompt.describe()["generation"] == {"do_sample": False, "max_new_tokens": STEPS, "padding_side": "left"}


def test_generation_is_deterministic_and_texts_are_kept(qwen_dir, items):
    enc = encoder(qwen_dir, batch_size=2)
    first = enc.encode(items)
    texts = list(enc.last_texts)
    again, again_texts = enc.encode_with_texts(items)
    np.testing.assert_array_equal(first, again)
    assert texts == again_texts and len(texts) == 3 and all(isinstance(t, str) for t in texts)
    single = encoder(qwen_dir, batch_size=1)
    np.testing.assert_allclose(single.encode(items), first, atol=1e-5)
    assert single.last_texts == texts


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"domain": "toys"}, "spec.domain"),
        ({"eos": "eos_input"}, "spec.eos"),
        ({"max_new_tokens": 0}, "spec.max_new_tokens"),
    ],
)
def test_bad_spec_names_the_field(qwen_dir, spec, match):
    with pytest.raises(InputError, match=match):
        encoder(qwen_dir, **spec)


def test_item_without_image_is_an_input_error(qwen_dir):
    with pytest.raises(InputError, match="item 4"):
        encoder(qwen_dir).encode([Item(4, "t", "c", "x", None)])


def test_built_through_the_kinds_registry(qwen_dir):
    from mmknockout.features.vl import build_encoder

    spec = {"kind": "lvlm", "model": str(qwen_dir), "domain": "pets", "eos": "prompt"}
    enc = build_encoder(spec, "cpu")
    assert isinstance(enc, LvlmEncoder) and enc.needs_images and enc.describe()["domain"] == "pets"


def test_checkpoint_without_chat_template_is_an_input_error(qwen_dir, tmp_path):
    import shutil

    copy = shutil.copytree(qwen_dir, tmp_path / "model")
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(InputError, match="chat template"):
        encoder(copy)
