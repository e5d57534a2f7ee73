"""A tiny random LLaVA(-1.5) checkpoint (model, tokenizer, CLIP PIL image processor) built offline.

As LLaVA-1.5 (``llava-hf/llava-1.5-7b-hf``): a CLIP vision tower, an MLP projector and a LLaMA text
model; one ``<image>`` placeholder per prompt, LLaVA-1.5's "USER: <image>\n... ASSISTANT:" chat format.
Here the tower has 2 layers on 28 px images (4 image tokens) and LLaMA width 32. The saved directory
loads through the same ``from_pretrained(directory)`` calls as the real checkpoint
(:func:`mmknockout.features.caption.load_llava`); its outputs are meaningless but deterministic (seeded).
"""

from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from .tiny_qwen import CORPUS, INIT_STD, byte_level_bpe

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


def tiny_llava_tokenizer(vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with LLaMA-style special tokens and ``<image>``, trained on the tiny corpus."""
    tok = byte_level_bpe(SPECIAL_TOKENS, CORPUS + " USER ASSISTANT Describe the image concisely.", vocab_size)
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
