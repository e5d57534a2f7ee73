"""LVLM [EOS] item embeddings (Pomo et al. 2025): image + a structured 1-shot keyword prompt, generate, pool.

The prompt asks for five domain keywords and carries no item title or description, so the vector is an
image feature conditioned on a generic prompt. Generation runs first (greedy); the embedding is the last
layer hidden state at one of two readings of "[EOS]" (spec ``eos``):

- ``generated``: the last position of prompt + generated tokens (the end-of-sequence token when generation
  stopped, else the last generated token), re-encoded in one forward pass;
- ``prompt``: the last prompt token, i.e. the state that predicted the first generated token.

The generated texts are kept: :meth:`LvlmEncoder.encode_with_texts` returns them with the matrix, and
:attr:`LvlmEncoder.last_texts` holds those of the last :meth:`LvlmEncoder.encode` call.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .vlm2vec import (
    DTYPES,
    IMAGE_TOKEN,
    last_token_index,
    load_image,
    load_qwen2_vl,
    qwen_batch,
    rows_at,
    spec_choice,
    spec_int,
)

#: Pomo et al.'s task-misaligned prompt (extended version): a semantic control that asks about
#: something other than the item; selected with spec ``prompt: misaligned``.
MISALIGNED_PROMPT = (
    "You are a computer scientist. Describe in fewer than 30 words how you can use this instrument "
    "for building a rocket."
)
PROMPTS = ("fitb", "misaligned")
#: The fill-in-the-blank (FITB) prompts of the authors' repository README, per domain (trailing space cut).
DOMAIN_PROMPTS = {
    "baby": (
        "Imagine you’re creating metadata for an image database of baby products. Your task is to select five "
        "keywords that best represent the image content. Fill in the blanks: [Category], [Age Group], [Purpose], "
        "[Material], [Usage Context]. For example, your answer will be: [Category] {Feeding}, [Age Group] "
        "{Infant}, [Purpose] {Hygiene}, [Material] {Silicone}, [Usage Context] {Home}."
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
EOS_READINGS = {
    "generated": "last position of prompt + generated tokens (end-of-sequence token if generation stopped)",
    "prompt": "last prompt token before generation (predicts the first generated token)",
}
#: Tokens that must not be generated: re-encoding would read them as image/video placeholders.
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def chat_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


class LvlmEncoder:
    """Pomo et al.'s LVLM [EOS] embedding; spec keys: model, revision, adapter, dtype, domain, eos,
    max_new_tokens, batch_size."""

    needs_images = True

    def __init__(self, spec: Mapping[str, Any], device: str) -> None:
        self.domain = spec_choice(spec, "domain", tuple(DOMAIN_PROMPTS), "")
        self.prompt_kind = spec_choice(spec, "prompt", PROMPTS, "fitb")
        self.eos = spec_choice(spec, "eos", tuple(EOS_READINGS), "")
        self.max_new_tokens = spec_int(spec, "max_new_tokens", 128)
        self.batch_size = spec_int(spec, "batch_size", 4)
        self.dtype = spec_choice(spec, "dtype", tuple(DTYPES), "float32")
        self.spec = dict(spec)
        self.qwen = load_qwen2_vl(spec, device)
        self.input_text = self._chat_input()
        self.last_texts: list[str] = []

    def _chat_input(self) -> str:
        """The domain prompt in the checkpoint's chat template, with one image placeholder (not yet expanded)."""
        name = self.spec["model"]
        if not self.qwen.tokenizer.chat_template:
            raise InputError(f"spec.model {name!r}: the tokenizer has no chat template")
        messages = chat_messages(self.prompt)
        text = self.qwen.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if text.count(IMAGE_TOKEN) != 1:
            raise InputError(f"spec.model {name!r}: the chat template must place one {IMAGE_TOKEN}")
        return text

    @property
    def prompt(self) -> str:
        """The domain's fill-in-the-blank prompt, or the task-misaligned control prompt."""
        return MISALIGNED_PROMPT if self.prompt_kind == "misaligned" else DOMAIN_PROMPTS[self.domain]

    def encode(self, items: Sequence) -> np.ndarray:
        """float32 [len(items), hidden] embeddings; the generated texts go to :attr:`last_texts`."""
        matrix, self.last_texts = self.encode_with_texts(items)
        return matrix

    @torch.no_grad()
    def encode_with_texts(self, items: Sequence) -> tuple[np.ndarray, list[str]]:
        """Embeddings and the generated text (special tokens removed) of every item, in order."""
        hidden = self.qwen.model.config.text_config.hidden_size
        matrices, texts = [np.zeros((0, hidden), dtype=np.float32)], []
        for start in range(0, len(items), self.batch_size):
            matrix, batch_texts = self._encode_batch(items[start : start + self.batch_size])
            matrices.append(matrix)
            texts.extend(batch_texts)
        return np.concatenate(matrices), texts

    def _encode_batch(self, items: Sequence) -> tuple[np.ndarray, list[str]]:
        images = []
        for item in items:
            if item.image is None:
                raise InputError(f"item {item.item_id}: the LVLM encoder needs an image, it has none")
            images.append(load_image(item.image))
        inputs = qwen_batch(self.qwen, [self.input_text] * len(items), images, "left")
        new_tokens, new_mask = self._generate(inputs)
        if self.eos == "generated":
            inputs["input_ids"] = torch.cat([inputs["input_ids"], new_tokens], dim=1)
            inputs["attention_mask"] = torch.cat([inputs["attention_mask"], new_mask], dim=1)
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(new_mask)], dim=1)
        states = self.qwen.model(**inputs, output_hidden_states=True).hidden_states[-1]
        pooled = rows_at(states, last_token_index(inputs["attention_mask"]))
        return pooled.float().cpu().numpy().astype(np.float32), self._texts(new_tokens, new_mask)

    def _generate(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy new tokens [batch, steps] and their mask: 1 up to and including the end-of-sequence token."""
        tokenizer = self.qwen.tokenizer
        banned = [[tokenizer.convert_tokens_to_ids(token)] for token in VISION_TOKENS]
        out = self.qwen.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            bad_words_ids=banned,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        is_eos = torch.isin(new_tokens, torch.tensor(self._eos_ids(), device=new_tokens.device))
        ended_before = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
        return new_tokens, (~ended_before).long()

    def _eos_ids(self) -> list[int]:
        eos = self.qwen.model.generation_config.eos_token_id
        if eos is None:
            eos = self.qwen.tokenizer.eos_token_id
        return list(eos) if isinstance(eos, (list, tuple)) else [eos]

    def _texts(self, new_tokens: torch.Tensor, new_mask: torch.Tensor) -> list[str]:
        """Decoded new tokens before the end-of-sequence token, special tokens removed."""
        eos = set(self._eos_ids())
        rows = [tokens[mask.bool()].tolist() for tokens, mask in zip(new_tokens, new_mask, strict=True)]
        decode = self.qwen.tokenizer.decode
        return [decode([t for t in row if t not in eos], skip_special_tokens=True).strip() for row in rows]

    def describe(self) -> dict[str, Any]:
        """Sidecar facts: checkpoint, domain prompt, [EOS] reading, generation settings, dtype."""
        return {
            "kind": "lvlm",
            "model": str(self.spec["model"]),
            "revision": self.spec.get("revision"),
            "adapter": str(self.spec["adapter"]) if self.spec.get("adapter") else None,
            "domain": self.domain,
            "prompt_kind": self.prompt_kind,
            "prompt": self.prompt,
            "input": self.input_text,
            "eos": self.eos,
            "eos_position": EOS_READINGS[self.eos],
            "pooling": "last layer hidden state (after the final norm) at the [EOS] position, not normalised",
            "generation": {"do_sample": False, "max_new_tokens": self.max_new_tokens, "padding_side": "left"},
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "dim": self.qwen.model.config.text_config.hidden_size,
        }
