"""VLM-generated item descriptions as image features (VIRAL, Kieu et al.; the base study's Table 11).

A generative vision-language model describes each item's image, greedily (deterministic); the
descriptions are encoded by a sentence-transformers model (:func:`mmknockout.features.text.encode`,
all-MiniLM-L6-v2 by default) and those vectors fill the *image* slot (VIRAL Eq. 5:
``v_i = Enc(VLM(P(image_i, title_i)))``). Prompt kinds (spec ``prompt``):

- ``viral``: VIRAL's title-guided chain-of-thought description; the item title is substituted;
- ``viral_notitle``: the same prompt without the title (VIRAL Table 2, "VLM w/o title");
- ``caption``: a generic image caption, as the base study's Appendix Table 11 "LLaVA-generated image
  captions" (how those captions were prompted is not stated in the study's text).

The model family follows the checkpoint's ``config.model_type``: ``qwen2_5_vl`` (VIRAL:
Qwen2.5-VL-7B-Instruct), ``qwen2_vl``, or ``llava`` (LLaVA-1.5). The generated texts of the last
:meth:`CaptionEncoder.encode` call are in :attr:`CaptionEncoder.last_texts`; the extraction keeps them
per chunk and writes them into the sidecar as ``generated_texts``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from .vlm2vec import DTYPES, IMAGE_TOKEN, load_image, load_qwen2_vl, qwen_batch, spec_choice, spec_int

# NOT given verbatim by the paper: VIRAL shows its chain-of-thought prompt only in its Figure 3, whose
# text is not available here. This is a faithful reading of Sec. 2.3 (image + title, step-by-step,
# item-relevant description that focuses on the titled product rather than other objects, Fig. 1).
VIRAL_PROMPT = (
    'This image shows the product "{title}". Let\'s think step by step. '
    "First, find this product in the image and ignore other objects, people and the background. "
    "Second, describe its visible features: type, shape, colour, material, parts and any text on it. "
    "Third, infer what it is used for and who would use it. "
    "Finally, write a short description of the product that combines these observations."
)
# The same chain of thought without the title (VIRAL Table 2, "VLM w/o title"); also not verbatim.
VIRAL_NOTITLE_PROMPT = (
    "This image shows a product. Let's think step by step. "
    "First, find the product in the image and ignore other objects, people and the background. "
    "Second, describe its visible features: type, shape, colour, material, parts and any text on it. "
    "Third, infer what it is used for and who would use it. "
    "Finally, write a short description of the product that combines these observations."
)
# A generic caption. NOT the base study's prompt: its text does not say how the Table 11 captions were
# prompted. This is one of LLaVA's own brief-description instructions (Liu et al. 2023, LLaVA-Instruct).
CAPTION_PROMPT = "Describe the image concisely."
PROMPTS = {"viral": VIRAL_PROMPT, "viral_notitle": VIRAL_NOTITLE_PROMPT, "caption": CAPTION_PROMPT}
#: Prompt kinds whose template reads the item title.
TITLE_PROMPTS = ("viral",)
TITLE_FIELD = "{title}"
DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
FAMILIES = {"qwen2_5_vl": "Qwen2.5-VL", "qwen2_vl": "Qwen2-VL", "llava": "LLaVA"}
#: Qwen's vision placeholders: never generated, and cut from titles (they would be read as image slots).
LLAVA_IMAGE_TOKEN = "<image>"
QWEN_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def fill_prompt(template: str, title: str) -> str:
    """``template`` with :data:`TITLE_FIELD` replaced by ``title`` (no other brace is interpreted)."""
    return template.replace(TITLE_FIELD, title)


def chat_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def model_type(name: str, revision: str | None) -> str:
    """The checkpoint's ``config.model_type``, checked against :data:`FAMILIES`."""
    from transformers import AutoConfig

    try:
        kind = AutoConfig.from_pretrained(name, revision=revision).model_type
    except (OSError, ValueError) as err:
        raise InputError(f"spec.model {name!r}: cannot read the checkpoint's config ({err})") from err
    if kind not in FAMILIES:
        raise InputError(f"spec.model {name!r}: model_type {kind!r} is not one of {', '.join(FAMILIES)}")
    return kind


@dataclass
class Vlm:
    """A loaded generative VLM: model (eval), tokenizer, batching and the tokens it must not generate."""

    family: str
    model: Any
    tokenizer: Any
    image_token: str
    banned: tuple[str, ...]
    batch: Any  # (texts, images) -> model inputs on the device, left-padded


def load_vlm(spec: Mapping[str, Any], device: str) -> Vlm:
    """The Qwen2-VL / Qwen2.5-VL / LLaVA checkpoint ``spec.model`` (``spec.revision``, ``spec.dtype``)."""
    name = spec.get("model")
    if not name:
        raise InputError("spec.model is required (a Qwen2.5-VL, Qwen2-VL or LLaVA checkpoint directory or name)")
    family = model_type(str(name), spec.get("revision"))
    if family == "llava":
        return load_llava(spec, device)
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    model_class = Qwen2_5_VLForConditionalGeneration if family == "qwen2_5_vl" else Qwen2VLForConditionalGeneration
    qwen = load_qwen2_vl({key: spec[key] for key in ("model", "revision", "dtype") if key in spec}, device, model_class)
    return Vlm(
        family=family,
        model=qwen.model,
        tokenizer=qwen.tokenizer,
        image_token=IMAGE_TOKEN,
        banned=QWEN_VISION_TOKENS,
        batch=lambda texts, images: qwen_batch(qwen, texts, images, "left"),
    )


def load_llava(spec: Mapping[str, Any], device: str):
    """The LLaVA checkpoint ``spec.model`` (``spec.revision``, ``spec.dtype``) with CLIP's PIL image processor."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaForConditionalGeneration

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
        image_token=LLAVA_IMAGE_TOKEN,
        banned=(LLAVA_IMAGE_TOKEN,),
        batch=lambda texts, images: llava_batch(model, tokenizer, image_processor, texts, images, device),
    )


def image_token_count(model, pixel_values: torch.Tensor) -> int:
    """Placeholder tokens per image: one per patch, plus CLS unless the strategy (``default``) drops it."""
    patch = model.config.vision_config.patch_size
    count = (pixel_values.shape[-2] // patch) * (pixel_values.shape[-1] // patch)
    return count + (0 if model.config.vision_feature_select_strategy == "default" else 1)


def llava_batch(model, tokenizer, image_processor, texts: Sequence[str], images: Sequence[Image.Image], device: str):
    """Left-padded LLaVA inputs; each text's one :data:`LLAVA_IMAGE_TOKEN` is expanded to the image's token count."""
    pixels = image_processor(images=list(images), return_tensors="pt")
    count = image_token_count(model, pixels["pixel_values"])
    texts = [text.replace(LLAVA_IMAGE_TOKEN, LLAVA_IMAGE_TOKEN * count) for text in texts]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    inputs = {**encoded, "pixel_values": pixels["pixel_values"].to(model.dtype)}
    return {key: value.to(device) for key, value in inputs.items()}


def eos_ids(vlm: Vlm) -> list[int]:
    """The generation config's end-of-sequence ids (else the tokenizer's)."""
    eos = vlm.model.generation_config.eos_token_id
    if eos is None:
        eos = vlm.tokenizer.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


@torch.no_grad()
def generate(vlm: Vlm, inputs: Mapping[str, torch.Tensor], max_new_tokens: int) -> list[str]:
    """Greedy texts of a left-padded batch: new tokens before the end-of-sequence token, special tokens removed."""
    tokenizer = vlm.tokenizer
    banned = [[tokenizer.convert_tokens_to_ids(token)] for token in vlm.banned]
    out = vlm.model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        bad_words_ids=banned or None,
        pad_token_id=tokenizer.pad_token_id,
    )
    stops = set(eos_ids(vlm))
    texts = []
    for row in out[:, inputs["input_ids"].shape[1] :].tolist():
        cut = next((i for i, token in enumerate(row) if token in stops), len(row))
        texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    return texts


class CaptionEncoder:
    """VLM descriptions of the item images, encoded by a sentence encoder; spec keys: model, revision,
    prompt, max_new_tokens, batch_size, dtype, text_encoder."""

    needs_images = True

    def __init__(self, spec: Mapping[str, Any], device: str) -> None:
        self.prompt_kind = spec_choice(spec, "prompt", tuple(PROMPTS), "viral")
        self.max_new_tokens = spec_int(spec, "max_new_tokens", 256)
        self.batch_size = spec_int(spec, "batch_size", 4)
        self.dtype = spec_choice(spec, "dtype", tuple(DTYPES), "float32")
        self.text_encoder = str(spec.get("text_encoder") or DEFAULT_TEXT_ENCODER)
        self.spec = dict(spec)
        self.device = device
        self.vlm = load_vlm(spec, device)
        self.input_template = self._chat_input(self.template)
        self._sentence = None
        self.last_texts: list[str] = []

    @property
    def template(self) -> str:
        """The prompt template of :attr:`prompt_kind` (``{title}`` marks the title for ``viral``)."""
        return PROMPTS[self.prompt_kind]

    def _chat_input(self, prompt: str) -> str:
        name = self.spec["model"]
        if not self.vlm.tokenizer.chat_template:
            raise InputError(f"spec.model {name!r}: the tokenizer has no chat template")
        text = self.vlm.tokenizer.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)
        if text.count(self.vlm.image_token) != 1:
            raise InputError(f"spec.model {name!r}: the chat template must place one {self.vlm.image_token}")
        return text

    def title(self, item) -> str:
        """The item title with image/vision placeholder strings cut (they would be read as image slots)."""
        title = item.title
        for token in (self.vlm.image_token, *self.vlm.banned):
            title = title.replace(token, "")
        return title

    def prompt(self, item) -> str:
        """The prompt for ``item``: the template with its title substituted (``viral``), else the template."""
        return fill_prompt(self.template, self.title(item)) if self.prompt_kind in TITLE_PROMPTS else self.template

    def model_input(self, item) -> str:
        """The exact model input text for ``item`` (chat template applied; placeholder not yet expanded)."""
        return (
            fill_prompt(self.input_template, self.title(item))
            if self.prompt_kind in TITLE_PROMPTS
            else self.input_template
        )

    def describe_items(self, items: Sequence) -> list[str]:
        """The generated description of every item, in order (batches of ``batch_size``)."""
        texts: list[str] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            images = []
            for item in batch:
                if item.image is None:
                    raise InputError(f"item {item.item_id}: the caption encoder needs an image, it has none")
                images.append(load_image(item.image))
            inputs = self.vlm.batch([self.model_input(item) for item in batch], images)
            texts.extend(generate(self.vlm, inputs, self.max_new_tokens))
        return texts

    def encode(self, items: Sequence) -> np.ndarray:
        """float32 [len(items), dim] sentence embeddings of the descriptions (in :attr:`last_texts`)."""
        from .text import encode

        texts = self.describe_items(items)
        matrix = encode(texts, model_name=self.text_encoder, model=self.sentence_model(), show_progress=False)
        self.last_texts = texts
        return matrix

    def sentence_model(self):
        """The sentence-transformers model :attr:`text_encoder`, loaded once."""
        if self._sentence is None:
            from .text import load_encoder

            self._sentence = load_encoder(self.text_encoder, device=self.device)
        return self._sentence

    def describe(self) -> dict[str, Any]:
        """Sidecar facts: checkpoint, family, prompt kind and template, chat input, generation, text encoder."""
        return {
            "kind": "vlm_caption",
            "model": str(self.spec["model"]),
            "revision": self.spec.get("revision"),
            "family": FAMILIES[self.vlm.family],
            "model_type": self.vlm.family,
            "prompt_kind": self.prompt_kind,
            "prompt": self.template,
            "title_guided": self.prompt_kind in TITLE_PROMPTS,
            "input": self.input_template,
            "generation": {
                "do_sample": False,
                "max_new_tokens": self.max_new_tokens,
                "padding_side": "left",
                "banned_tokens": list(self.vlm.banned),
                "eos_token_ids": eos_ids(self.vlm),
                # the checkpoint's own generation config still applies, e.g. Qwen2.5-VL-Instruct's 1.05
                "repetition_penalty": getattr(self.vlm.model.generation_config, "repetition_penalty", None),
            },
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "text_encoder": self.text_encoder,
            "text_max_seq_length": self.sentence_model().max_seq_length,
            "pooling": "sentence-transformers embedding of the generated description",
        }
