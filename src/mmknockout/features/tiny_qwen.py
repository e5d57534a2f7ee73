"""Tiny random Qwen2-VL checkpoints (model, processor, LoRA adapter) built offline, for tests and the demo.

The saved directories load through the same ``from_pretrained(directory)`` calls as real checkpoints;
the features they give are meaningless but deterministic (seeded).
"""

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

#: Qwen2-VL's special tokens, in its order (pad = ``<|endoftext|>``, chat end = ``<|im_end|>``).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: A Qwen-style chat template, reduced to what the encoders use: user turns with images and text.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

INIT_STD = 0.3

#: Text the byte-level BPE merges are learnt from (prompt words, so the token sequences stay short).
CORPUS = (
    "Imagine you're creating metadata for an image database of baby products pet-related items clothing. "
    "Your task is to select five keywords that best represent the image content. Fill in the blanks: "
    "Category Age Group Purpose Material Usage Context Pet Type Type Color Wear Location Style "
    "For example, your answer will be: Feeding Infant Hygiene Silicone Home Toys Dog Entertainment Rubber "
    "Outdoor dress red torso cotton casual. You are analyzing a product for retrieval purposes. Here is the "
    "product image: Product details: Generate a unified representation for this product. category: "
    "user assistant system"
)


def byte_level_bpe(special_tokens: tuple[str, ...], corpus: str, vocab_size: int = 384) -> Tokenizer:
    """A byte-level BPE with ``special_tokens`` first, its merges learnt from ``corpus`` (offline)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([corpus], trainer=trainer)
    return tok


def tiny_tokenizer(vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens, trained on :data:`CORPUS`."""
    tok = byte_level_bpe(SPECIAL_TOKENS, CORPUS, vocab_size)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=CHAT_TEMPLATE,
    )


def tiny_image_processor() -> Qwen2VLImageProcessorPil:
    """Qwen2-VL's PIL image processor (no torchvision), capped at 56 x 56 px."""
    return Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56)


def tiny_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2VLConfig:
    """Hidden 32, 2 layers, 2 heads; vision tower with 14 px patches merged 2 x 2 (56 px image: 4 tokens).

    Weights are drawn with std :data:`INIT_STD` (Qwen2-VL's 0.02 lets the long prompt drown the image, so
    every image would generate the same text).
    """
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 512,
        "initializer_range": INIT_STD,
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision = {
        "depth": 1,
        "embed_dim": 16,
        "hidden_size": 32,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "initializer_range": INIT_STD,
    }
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        initializer_range=INIT_STD,
    )


def tiny_qwen2_vl(directory: Path, seed: int = 0) -> Path:
    """Build, seed and save a tiny random Qwen2-VL model, its tokenizer and image processor into ``directory``.

    The two are saved separately: ``Qwen2VLProcessor`` cannot be built without torchvision's video processor.
    """
    tokenizer = tiny_tokenizer()
    return save_tiny(Qwen2VLForConditionalGeneration, tiny_config(tokenizer), tokenizer, directory, seed)


def save_tiny(model_class: type, config: Any, tokenizer: PreTrainedTokenizerFast, directory: Path, seed: int) -> Path:
    """Seed, build and save ``model_class(config)`` with ``tokenizer`` and the tiny image processor."""
    directory = Path(directory)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    tiny_image_processor().save_pretrained(directory)
    return directory


def tiny_lora(base_dir: Path, directory: Path, seed: int = 0) -> Path:
    """Save a rank-2 LoRA adapter on ``q_proj``/``v_proj`` of the model in ``base_dir``, B weights random.

    peft initialises B to zero (a no-op adapter); random B makes merging change the outputs.
    """
    from peft import LoraConfig, get_peft_model

    model = Qwen2VLForConditionalGeneration.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(directory)
    return Path(directory)


def tiny_qwen2_5_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """The text model of :func:`tiny_config` with a Qwen2.5-VL vision tower (1 block, full attention)."""
    base = tiny_config(tokenizer)
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    text = {key: getattr(base.text_config, key) for key in keys}
    text.update(
        num_key_value_heads=1,
        max_position_embeddings=512,
        initializer_range=INIT_STD,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
        bos_token_id=base.text_config.bos_token_id,
        eos_token_id=base.text_config.eos_token_id,
        pad_token_id=base.text_config.pad_token_id,
    )
    vision = {
        "depth": 1,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_heads": 2,
        "out_hidden_size": 32,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [0],
        "initializer_range": INIT_STD,
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=base.image_token_id,
        video_token_id=base.video_token_id,
        vision_start_token_id=base.vision_start_token_id,
        vision_end_token_id=base.vision_end_token_id,
        initializer_range=INIT_STD,
    )


def tiny_qwen2_5_vl(directory: Path, seed: int = 0) -> Path:
    """As :func:`tiny_qwen2_vl`, a tiny random Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``).

    Qwen2.5-VL checkpoints use Qwen2-VL's image processor, so the same PIL processor is saved.
    """
    tokenizer = tiny_tokenizer()
    return save_tiny(Qwen2_5_VLForConditionalGeneration, tiny_qwen2_5_config(tokenizer), tokenizer, directory, seed)
