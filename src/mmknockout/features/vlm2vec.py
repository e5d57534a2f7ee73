"""VLM2Vec item embeddings (Zhang 2025): Qwen2-VL (+ merged LoRA), last non-pad token, L2-normalised.

Input as VLM2Vec builds it: raw text with Qwen2-VL's ``<|image_pad|>`` placeholder, no chat template, no
EOS appended. One encoder computes one strategy: ``visual``, ``textual``, ``prompt1`` or ``prompt2``; the
paper's Dual (visual ⊕ textual) is assembled from two encoders at the feature-set level.

Also holds the Qwen2-VL loading and batching shared with :mod:`mmknockout.features.lvlm`. The processor is
assembled here from the tokenizer and the PIL image processor: ``Qwen2VLProcessor`` needs torchvision.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

from ..errors import InputError

IMAGE_TOKEN = "<|image_pad|>"
#: The paper's Textual string: title and leaf category, no description.
TEXT_TEMPLATE = "{title}, category: {category}"
INSTRUCTION = "Generate a unified representation for this product."
PROMPT2_INTRO = "You are analyzing a product for retrieval purposes. Here is the product image:"
PROMPT2_DETAILS = "Product details:"
#: Templates per strategy; ``{text}`` is :data:`TEXT_TEMPLATE` filled in. Parts are joined by newlines, as in
#: VLM2Vec-V2's own inputs. Visual is the image alone ("without textual context").
PROMPTS = {
    "visual": IMAGE_TOKEN,
    "textual": "{text}",
    "prompt1": f"{IMAGE_TOKEN}\n{{text}}\n{INSTRUCTION}",
    "prompt2": f"{PROMPT2_INTRO}\n{IMAGE_TOKEN}\n{PROMPT2_DETAILS} {{text}}\n{INSTRUCTION}",
}
#: VLM2Vec resizes images with a side under MIN_SIDE px to SMALL_SIZE x SMALL_SIZE before the processor.
MIN_SIDE = 28
SMALL_SIZE = 56
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PADDING_SIDES = ("left", "right")
POOLING = "last layer hidden state (after the final norm) at the last non-pad token (attention mask), L2-normalised"


@dataclass
class Qwen2VL:
    """A loaded Qwen2-VL: model in eval mode, tokenizer and PIL image processor."""

    model: Any  # Qwen2VLForConditionalGeneration or Qwen2_5_VLForConditionalGeneration
    tokenizer: Any
    image_processor: Qwen2VLImageProcessorPil
    device: str


def spec_choice(spec: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    """``spec[key]`` (or ``default``), checked against ``choices``."""
    value = spec.get(key, default)
    if value not in choices:
        raise InputError(f"spec.{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def spec_int(spec: Mapping[str, Any], key: str, default: int) -> int:
    """``spec[key]`` (or ``default``) as a positive int."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"spec.{key} must be a positive integer, got {value!r}")
    return value


def merge_adapter(model: Qwen2VLForConditionalGeneration, adapter: str) -> Qwen2VLForConditionalGeneration:
    """Apply the LoRA adapter in ``adapter`` and merge it into the weights (VLM2Vec's ``lora=True`` load)."""
    try:
        from peft import PeftModel
    except ImportError as err:
        raise InputError(f"spec.adapter {adapter!r} needs the peft package, which is not installed") from err
    try:
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (OSError, ValueError) as err:
        raise InputError(f"spec.adapter {adapter!r}: cannot load a LoRA adapter ({err})") from err


def load_qwen2_vl(spec: Mapping[str, Any], device: str, model_class: type = Qwen2VLForConditionalGeneration) -> Qwen2VL:
    """Load ``spec.model`` (``spec.revision``, ``spec.dtype``), merging ``spec.adapter`` when given.

    ``model_class``: the model's class; Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``) shares
    Qwen2-VL's tokenizer, image processor and input layout.
    """
    family = "Qwen2-VL" if model_class is Qwen2VLForConditionalGeneration else model_class.__name__
    name = spec.get("model")
    if not name:
        raise InputError(f"spec.model is required (a {family} checkpoint directory or name)")
    dtype = DTYPES[spec_choice(spec, "dtype", tuple(DTYPES), "float32")]
    revision = spec.get("revision")
    try:
        model = model_class.from_pretrained(name, revision=revision, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as err:
        raise InputError(f"spec.model {name!r}: cannot load a {family} checkpoint ({err})") from err
    if spec.get("adapter"):
        model = merge_adapter(model, str(spec["adapter"]))
    return Qwen2VL(model.to(device).eval(), tokenizer, image_processor, device)


def load_image(path: Path) -> Image.Image:
    """RGB image from ``path``; sides under :data:`MIN_SIDE` px resized to :data:`SMALL_SIZE` square."""
    try:
        with Image.open(path) as img:
            image = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"image file {path}: cannot read it ({err})") from err
    if min(image.size) < MIN_SIDE:
        image = image.resize((SMALL_SIZE, SMALL_SIZE), Image.Resampling.BICUBIC)
    return image


def qwen_batch(qwen: Qwen2VL, texts: Sequence[str], images: Sequence[Image.Image], padding_side: str) -> dict:
    """Model inputs for ``texts``; each :data:`IMAGE_TOKEN` takes the next image, expanded to its patch count.

    Text-only batches get explicit position ids (counted over real tokens), so left padding shifts nothing.
    """
    inputs: dict[str, torch.Tensor] = {}
    texts = list(texts)
    if images:
        pixels = qwen.image_processor(images=list(images), return_tensors="pt")
        merge = qwen.image_processor.merge_size**2
        counts = iter(int(n) // merge for n in pixels["image_grid_thw"].prod(dim=1))
        texts = [_expand_image_tokens(text, counts) for text in texts]
        inputs.update(pixels)
    encoded = qwen.tokenizer(texts, return_tensors="pt", padding=True, padding_side=padding_side)
    inputs.update(encoded)
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == qwen.model.config.image_token_id).long()
    if not images:
        inputs["position_ids"] = text_positions(inputs["attention_mask"])
    return {key: value.to(qwen.device) for key, value in inputs.items()}


def _expand_image_tokens(text: str, counts: Iterator[int]) -> str:
    parts = text.split(IMAGE_TOKEN)
    return parts[0] + "".join(IMAGE_TOKEN * next(counts) + part for part in parts[1:])


def text_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Qwen2-VL's 3-axis position ids for text: 0, 1, ... over the real tokens, 0 on padding."""
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return positions.unsqueeze(0).expand(3, -1, -1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last non-pad token; right for left and right padding alike."""
    columns = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * columns).argmax(dim=1)


def rows_at(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hidden[b, index[b]]`` for every row ``b``."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class Vlm2VecEncoder:
    """VLM2Vec embeddings of one strategy; spec keys: model, revision, adapter, strategy, batch_size, dtype,
    padding_side."""

    def __init__(self, spec: Mapping[str, Any], device: str) -> None:
        self.strategy = spec_choice(spec, "strategy", tuple(PROMPTS), "")
        self.batch_size = spec_int(spec, "batch_size", 8)
        self.padding_side = spec_choice(spec, "padding_side", PADDING_SIDES, "right")
        self.dtype = spec_choice(spec, "dtype", tuple(DTYPES), "float32")
        self.spec = dict(spec)
        self.qwen = load_qwen2_vl(spec, device)
        self.needs_images = IMAGE_TOKEN in PROMPTS[self.strategy]

    def prompt(self, item) -> str:
        """The exact model input text for ``item`` (before the image placeholder is expanded)."""
        text = TEXT_TEMPLATE.format(title=item.title, category=item.category)
        return PROMPTS[self.strategy].format(text=text)

    def image(self, item) -> list[Image.Image]:
        """The item's image as a one-element list (empty for textual)."""
        if not self.needs_images:
            return []
        if item.image is None:
            raise InputError(f"item {item.item_id}: strategy {self.strategy!r} needs an image, it has none")
        return [load_image(item.image)]

    @torch.no_grad()
    def encode(self, items: Sequence) -> np.ndarray:
        """float32 [len(items), hidden] L2-normalised embeddings."""
        chunks = [self._encode_batch(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        if not chunks:
            return np.zeros((0, self.qwen.model.config.text_config.hidden_size), dtype=np.float32)
        return np.concatenate(chunks)

    def _encode_batch(self, items: Sequence) -> np.ndarray:
        images = [image for item in items for image in self.image(item)]
        inputs = qwen_batch(self.qwen, [self.prompt(item) for item in items], images, self.padding_side)
        hidden = self.qwen.model(**inputs, output_hidden_states=True).hidden_states[-1]
        pooled = rows_at(hidden, last_token_index(inputs["attention_mask"])).float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy().astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """Sidecar facts: checkpoint, adapter, strategy, prompt template, pooling, dtype."""
        return {
            "kind": "vlm2vec",
            "model": str(self.spec["model"]),
            "revision": self.spec.get("revision"),
            "adapter": str(self.spec["adapter"]) if self.spec.get("adapter") else None,
            "adapter_merged": bool(self.spec.get("adapter")),
            "strategy": self.strategy,
            "prompt": PROMPTS[self.strategy],
            "text": TEXT_TEMPLATE,
            "chat_template": False,
            "image_token": IMAGE_TOKEN,
            "small_images": f"side < {MIN_SIDE} px resized to {SMALL_SIZE}x{SMALL_SIZE}",
            "pooling": POOLING,
            "padding_side": self.padding_side,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "dim": self.qwen.model.config.text_config.hidden_size,
        }
