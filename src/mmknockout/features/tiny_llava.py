"""LLaVA(-1.5) loading and batching for the caption encoder, and a tiny random LLaVA built offline.

LLaVA-1.5 (``llava-hf/llava-1.5-7b-hf``): CLIP ViT-L/14-336 vision tower, an MLP projector and a
LLaMA/Vicuna text model; the image is one ``<image>`` placeholder in the prompt, expanded to one token
per vision patch (the CLS token dropped under ``vision_feature_select_strategy: default``). The image
processor is CLIP's PIL one (``CLIPImageProcessorPil``: no torchvision). The tiny model (CLIP tower of
2 layers on 28 px images, i.e. 4 image tokens, LLaMA of width 32) loads through the same
``from_pretrained(directory)`` calls; its outputs are meaningless but deterministic (seeded).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from ..errors import InputError
from .tiny_qwen import CORPUS, INIT_STD
from .vlm2vec import DTYPES, spec_choice

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)
#: LLaVA-1.5's conversation format as the llava-hf chat template renders one user turn with an image.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\n' }}{% endif %}"
    "{% endfor %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] + ' ' }}"
    "{% endif %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
IMAGE_SIZE = 28


def load_llava(spec: Mapping[str, Any], device: str):
    """The LLaVA checkpoint ``spec.model`` as a :class:`mmknockout.features.caption.Vlm`."""
    from .caption import Vlm

    name, revision = spec["model"], spec.get("revision")
    dtype = DTYPES[spec_choice(spec, "dtype", tuple(DTYPES), "float32")]
    try:
        model = LlavaForConditionalGeneration.from_pretrained(name, revision=revision, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
        image_processor = CLIPImageProcessorPil.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as err:
        raise InputError(f"spec.model {name!r}: cannot load a LLaVA checkpoint ({err})") from err
    model = model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token
    return Vlm(
        family="llava",
        model=model,
        tokenizer=tokenizer,
        image_token=IMAGE_TOKEN,
        banned=(IMAGE_TOKEN,),
        batch=lambda texts, images: llava_batch(model, tokenizer, image_processor, texts, images, device),
    )


def image_token_count(model: LlavaForConditionalGeneration, pixel_values: torch.Tensor) -> int:
    """Placeholder tokens per image: one per patch, plus CLS unless the strategy (``default``) drops it."""
    patch = model.config.vision_config.patch_size
    count = (pixel_values.shape[-2] // patch) * (pixel_values.shape[-1] // patch)
    return count + (0 if model.config.vision_feature_select_strategy == "default" else 1)


def llava_batch(model, tokenizer, image_processor, texts: Sequence[str], images: Sequence[Image.Image], device: str):
    """Left-padded model inputs; each text's one :data:`IMAGE_TOKEN` is expanded to the image's token count."""
    pixels = image_processor(images=list(images), return_tensors="pt")
    count = image_token_count(model, pixels["pixel_values"])
    texts = [text.replace(IMAGE_TOKEN, IMAGE_TOKEN * count) for text in texts]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    inputs = {**encoded, "pixel_values": pixels["pixel_values"].to(model.dtype)}
    return {key: value.to(device) for key, value in inputs.items()}


def tiny_llava_tokenizer(vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with LLaMA-style special tokens and ``<image>``, trained on the tiny corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS + " USER ASSISTANT Describe the image concisely."], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=[IMAGE_TOKEN],
        chat_template=CHAT_TEMPLATE,
    )


def tiny_llava_config(tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    """CLIP tower (width 16, 2 layers, 14 px patches on 28 px images) + LLaMA (width 32, 2 layers)."""
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=14,
        projection_dim=16,
        initializer_range=INIT_STD,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        initializer_range=INIT_STD,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(IMAGE_SIZE // 14) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )


def tiny_llava(directory: Path, seed: int = 0) -> Path:
    """Build, seed and save a tiny random LLaVA, its tokenizer and CLIP PIL image processor into ``directory``."""
    directory = Path(directory)
    tokenizer = tiny_llava_tokenizer()
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_llava_config(tokenizer)).eval()
    with torch.no_grad():  # LLaVA's init draws with its own small std; widen it so images change the text
        for param in model.parameters():
            if param.ndim > 1:
                param.normal_(0.0, INIT_STD)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    size = {"shortest_edge": IMAGE_SIZE}
    CLIPImageProcessorPil(size=size, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(directory)
    return directory
