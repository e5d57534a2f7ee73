"""VLM caption encoder (VIRAL descriptions, Table 11 captions) through the real from_pretrained(dir) of a tiny
random Qwen2.5-VL, with the real all-MiniLM-L6-v2 encoding the generated texts."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_vl import write_fixture

from mmknockout import config as cfg
from mmknockout.errors import InputError
from mmknockout.features import extract as extract_mod
from mmknockout.features.caption import PROMPTS, QWEN_VISION_TOKENS, CaptionEncoder
from mmknockout.features.text import encode as minilm
from mmknockout.features.tiny import tiny_clip
from mmknockout.features.tiny_qwen import tiny_qwen2_5_vl
from mmknockout.features.vl import Item, encode_step
from mmknockout.features.vlm2vec import load_image

STEPS = 6
TITLE = 'Ergo "Baby" Carrier {x}'
STEPS_TEXT = (
    "Let's think step by step. First, find {the} product in the image and ignore other objects, people and the "
    "background. Second, describe its visible features: type, shape, colour, material, parts and any text on it. "
    "Third, infer what it is used for and who would use it. Finally, write a short description of the product "
    "that combines these observations."
)
GOLDEN = {
    "viral": f'This image shows the product "{TITLE}". ' + STEPS_TEXT.replace("{the}", "this"),
    "viral_notitle": "This image shows a product. " + STEPS_TEXT.replace("{the}", "the"),
    "caption": "Describe the image concisely.",
}
CHAT = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen25") / "model")


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, (size, colour) in enumerate([((56, 56), (220, 20, 20)), ((84, 56), (20, 200, 20)), ((20, 20), (0, 0, 250))]):
        Image.new("RGB", size, colour).save(folder / f"{i}.png")
        out.append(
            Item(item_id=i, title=TITLE if i == 0 else f"item {i}", category="c", text="x", image=folder / f"{i}.png")
        )
    return out


@pytest.fixture(scope="module")
def viral(qwen_dir):
    return encoder(qwen_dir, batch_size=3)


def encoder(qwen_dir, **spec):
    return CaptionEncoder({"model": str(qwen_dir), "prompt": "viral", "max_new_tokens": STEPS, **spec}, "cpu")


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_prompts_with_the_title_substituted(qwen_dir, viral, items, kind):
    enc = viral if kind == "viral" else encoder(qwen_dir, prompt=kind)
    assert enc.prompt(items[0]) == GOLDEN[kind] and enc.model_input(items[0]) == CHAT.format(GOLDEN[kind])
    facts = enc.describe()
    assert (
        facts["prompt"] == PROMPTS[kind]
        and facts["prompt_kind"] == kind
        and facts["input"] == CHAT.format(PROMPTS[kind])
    )
    assert facts["title_guided"] == (kind == "viral") and facts["family"] == "Qwen2.5-VL"
    assert facts["text_encoder"] == "all-MiniLM-L6-v2" and facts["generation"]["max_new_tokens"] == STEPS
    assert facts["generation"]["do_sample"] is False and facts["text_max_seq_length"] == 256
    if kind == "viral":
        assert "{title}" in PROMPTS[kind] and enc.prompt(items[1]) != enc.prompt(items[0])
    else:  # the title is nowhere in the input
        assert "{title}" not in PROMPTS[kind] and "Carrier" not in enc.model_input(items[0])
        assert enc.model_input(items[1]) == enc.model_input(items[0])


def test_vision_placeholders_in_titles_are_cut(viral, items):
    item = Item(item_id=9, title="a<|image_pad|>b<|vision_start|>", category="", text="", image=items[0].image)
    assert viral.prompt(item) == GOLDEN["viral"].replace(TITLE, "ab")
    assert all(token in viral.describe()["generation"]["banned_tokens"] for token in QWEN_VISION_TOKENS)


def hand_generate(qwen_dir, text, image):
    """Greedy text of one unpadded input through independently loaded model, tokenizer, image processor."""
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(qwen_dir).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(qwen_dir), Qwen2VLImageProcessorPil.from_pretrained(qwen_dir)
    pixels = processor(images=[image], return_tensors="pt")
    text = text.replace("<|image_pad|>", "<|image_pad|>" * (int(pixels["image_grid_thw"].prod()) // 4))
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    banned = [[tokenizer.convert_tokens_to_ids(t)] for t in QWEN_VISION_TOKENS]
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            **pixels,
            mm_token_type_ids=(ids == model.config.image_token_id).long(),
            max_new_tokens=STEPS,
            do_sample=False,
            bad_words_ids=banned,
        )
    new = out[0, ids.shape[1] :].tolist()
    new = new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_descriptions_are_greedy_deterministic_batch_invariant_and_minilm_encoded(qwen_dir, viral, items):
    matrix = viral.encode(items)
    texts = list(viral.last_texts)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 384) and len(texts) == 3
    assert texts[0] == hand_generate(qwen_dir, viral.model_input(items[0]), load_image(items[0].image))
    assert len(set(texts)) > 1 and all(texts)  # the image (and title) change the description
    np.testing.assert_allclose(matrix, minilm(texts, show_progress=False), atol=1e-5)
    single = encoder(qwen_dir, batch_size=1)
    np.testing.assert_allclose(single.encode(items), matrix, atol=1e-5)
    assert single.last_texts == texts
    np.testing.assert_allclose(viral.encode(items[:1]), matrix[:1], atol=1e-5)  # MiniLM's own padding: float noise
    assert viral.last_texts == texts[:1]


def test_unknown_family_and_missing_image(tmp_path, viral):
    with pytest.raises(InputError, match="model_type 'clip' is not one of qwen2_5_vl, qwen2_vl, llava"):
        CaptionEncoder({"model": str(tiny_clip(tmp_path / "clip")), "prompt": "caption"}, "cpu")
    with pytest.raises(InputError, match="spec.prompt must be one of"):
        CaptionEncoder({"model": "x", "prompt": "viral_cot"}, "cpu")
    with pytest.raises(InputError, match="needs an image"):
        viral.encode([Item(item_id=0, title="t", category="", text="", image=None)])


def test_encode_step_writes_features_and_generated_texts_and_resumes(tmp_path, qwen_dir, monkeypatch):
    meta, mapping, index, _ = write_fixture(tmp_path)
    spec = {"kind": "vlm_caption", "model": str(qwen_dir), "prompt": "viral", "max_new_tokens": STEPS, "chunk_size": 1}
    out = tmp_path / "out"
    run = dict(metadata=str(meta), item_map=str(mapping), encoder=spec, device="cpu", images_index=str(index))

    real, calls = extract_mod._encode_chunk, []

    def killed_on_second(encoder, batch, chunk):
        if calls:
            raise KeyboardInterrupt  # the job is killed while encoding the second chunk
        calls.append(chunk)
        return real(encoder, batch, chunk)

    monkeypatch.setattr(extract_mod, "_encode_chunk", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        encode_step(**run, features=str(out / "f.npy"), sidecar=str(out / "f.json"))
    assert len(list(extract_mod.chunk_folder(out / "f.npy").glob("*.json"))) == 1

    def counted(encoder, batch, chunk):
        calls.append(chunk)
        return real(encoder, batch, chunk)

    monkeypatch.setattr(extract_mod, "_encode_chunk", counted)
    encode_step(**run, features=str(out / "f.npy"), sidecar=str(out / "f.json"))
    assert calls == [0, 1]  # chunk 0 reused from before the kill
    monkeypatch.setattr(extract_mod, "_encode_chunk", real)
    encode_step(**run, features=str(out / "g.npy"), sidecar=str(out / "g.json"))  # uninterrupted
    matrix, facts = np.load(out / "f.npy"), json.loads((out / "f.json").read_text())
    np.testing.assert_array_equal(matrix, np.load(out / "g.npy"))
    assert facts == json.loads((out / "g.json").read_text())
    assert matrix.shape == (5, 384) and facts["dim"] == 384 and facts["missing_items"] == [0, 3, 4]
    texts = facts["generated_texts"]
    assert [t["itemID"] for t in texts] == [1, 2]
    np.testing.assert_allclose(matrix[[1, 2]], minilm([t["text"] for t in texts], show_progress=False), atol=1e-5)
    assert facts["encoder"]["kind"] == "vlm_caption" and facts["encoder"]["prompt_kind"] == "viral"
    assert sorted(p.name for p in out.iterdir()) == ["f.json", "f.npy", "g.json", "g.npy"]


def config_with(spec):
    return {
        "datasets": {"d": {"source": "registry", "feature_sets": ["viral"]}},
        "encoders": {"text": {"t": {"model": "m"}}, "image": {"desc": spec}},
        "feature_sets": {"viral": {"text": "t", "image": "desc"}},
        "models": ["BPR"],
        "grid": "demo",
        "conditions": {"baseline": {}},
        "seeds": [1],
        "preprocessing": {"kcore": 5, "split_seed": 1},
        "selection": "valid",
    }


def test_config_schema_and_checks():
    spec = {"kind": "vlm_caption", "model": "Qwen/Qwen2.5-VL-7B-Instruct", "prompt": "viral"}
    conf = cfg.validate_config(copy.deepcopy(config_with(spec)))
    filled = conf["encoders"]["image"]["desc"]
    assert (filled["max_new_tokens"], filled["batch_size"], filled["text_encoder"]) == (256, 4, "all-MiniLM-L6-v2")
    cfg.validate_config(config_with({**spec, "input": {"text": "empty"}}))
    with pytest.raises(InputError, match="prompt caption does not read the item text"):
        cfg.validate_config(config_with({**spec, "prompt": "caption", "input": {"text": "empty"}}))
    with pytest.raises(InputError):
        cfg.validate_config(config_with({**spec, "prompt": "cot"}))


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    from mmknockout.features.tiny_llava import tiny_llava

    return tiny_llava(tmp_path_factory.mktemp("llava") / "model")


def test_llava_captions_follow_its_chat_format_and_are_batch_invariant(llava_dir, items):
    from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaForConditionalGeneration

    enc = CaptionEncoder({"model": str(llava_dir), "prompt": "caption", "max_new_tokens": STEPS}, "cpu")
    assert enc.model_input(items[0]) == "USER: <image>\nDescribe the image concisely. ASSISTANT:"
    assert enc.describe()["family"] == "LLaVA" and enc.describe()["generation"]["banned_tokens"] == ["<image>"]
    viral_batch = encoder(llava_dir, batch_size=3)  # titles of different lengths: left padding in one batch
    matrix = viral_batch.encode(items)
    single = encoder(llava_dir, batch_size=1)
    np.testing.assert_allclose(single.encode(items), matrix, atol=1e-5)
    assert single.last_texts == viral_batch.last_texts and len(set(single.last_texts)) > 1
    np.testing.assert_allclose(matrix, minilm(single.last_texts, show_progress=False), atol=1e-5)

    model = LlavaForConditionalGeneration.from_pretrained(llava_dir).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(llava_dir), CLIPImageProcessorPil.from_pretrained(llava_dir)
    pixels = processor(images=[load_image(items[0].image)], return_tensors="pt")["pixel_values"]
    assert pixels.shape[-2:] == (28, 28)  # 2 x 2 patches of 14 px: 4 image tokens (CLS dropped)
    ids = torch.tensor([tokenizer(viral_batch.model_input(items[0]).replace("<image>", "<image>" * 4))["input_ids"]])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            pixel_values=pixels,
            max_new_tokens=STEPS,
            do_sample=False,
            bad_words_ids=[[tokenizer.convert_tokens_to_ids("<image>")]],
        )
    new = out[0, ids.shape[1] :].tolist()
    new = new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
    assert viral_batch.last_texts[0] == tokenizer.decode(new, skip_special_tokens=True).strip()


def test_text_encoder_given_as_a_config_encoder_name_is_refused():
    from pathlib import Path

    from mmknockout import config as cfg

    conf = cfg.load_yaml(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    conf["slices"] = []
    conf["encoders"]["image"]["desc"] = {
        "kind": "vlm_caption",
        "model": "m",
        "prompt": "viral",
        "text_encoder": "minilm",
    }
    with pytest.raises(InputError, match=r"encoders\.image\.desc\.text_encoder.*all-MiniLM-L6-v2"):
        cfg.validate_config(conf)
