"""How the seq2seq model reads and writes semantic IDs: two modes behind one interface.

* :class:`IdEncoding` (``seq2seq.mode: scratch``, TIGER): the layout's own integer tokens and a T5
  built from scratch over exactly that vocabulary; no tokenizer, no pretrained weights.
* :class:`PromptEncoding` (``seq2seq.mode: pretrained``, the MGR paper's setup): a pretrained T5 and its
  tokenizer loaded with ``from_pretrained(seq2seq.model)``, the ID tokens (``<txt-1-40>`` ...) added
  to the vocabulary, and natural-language prompts. Alignment (the paper's wording): "Here we have an
  item with image id <img-1-40><img-2-80>. Please predict its corresponding text id." -> the text
  ID; next item (ours, the paper gives none): "Here is the purchase history of a user: <item> <item>
  .... Please predict the next item." -> the item's ID.

Both give encoder inputs as left-padded integer matrices (padding id 0) and targets as token ids.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..errors import InputError
from .seq2seq import T5Settings, build_t5
from .tokens import PAD, SPECIALS, TokenLayout

REC_PROMPT = "Here is the purchase history of a user: {history}. Please predict the next item."
ALIGN_PROMPT = "Here we have an item with {source} id {ids}. Please predict its corresponding {target} id."
WORD = {"text": "text", "image": "image"}


class IdEncoding:
    """The layout's integer tokens, a T5 from scratch."""

    def __init__(self, layout: TokenLayout, settings: T5Settings) -> None:
        self.layout, self.settings = layout, settings

    def model(self, seed: int) -> torch.nn.Module:
        return build_t5(self.layout.vocab_size, self.settings, seed)

    def ids(self, layout_tokens: np.ndarray) -> np.ndarray:
        return layout_tokens

    def history_inputs(self, item_tokens: np.ndarray, history: np.ndarray, users: np.ndarray) -> np.ndarray:
        return self.layout.history_inputs(item_tokens, history, users)

    def alignment_examples(self, codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.layout.alignment_examples(codes)


class PromptEncoding:
    """A pretrained T5 and its tokenizer with the ID tokens added; natural-language prompts."""

    def __init__(self, directory: str, layout: TokenLayout, max_input: int = 1024) -> None:
        from transformers import AutoTokenizer

        self.directory, self.layout, self.max_input = directory, layout, max_input
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        if self.tokenizer.pad_token_id != PAD:
            raise InputError(
                f"{directory}: the tokenizer's padding id must be {PAD} (T5's), got {self.tokenizer.pad_token_id}"
            )
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"  # keep the most recent history
        self.names = layout.names()[: layout.user_offset]  # prompts carry no user tokens
        self.tokenizer.add_tokens(self.names[len(SPECIALS) :])
        mapped = self.tokenizer.convert_tokens_to_ids(self.names[len(SPECIALS) :])
        specials = [PAD, self.tokenizer.eos_token_id] + [self.tokenizer.unk_token_id] * (len(SPECIALS) - 2)
        self.id_map = np.array(specials + list(mapped), dtype=np.int64)

    def model(self, seed: int) -> torch.nn.Module:
        from transformers import T5ForConditionalGeneration

        torch.manual_seed(seed)
        model = T5ForConditionalGeneration.from_pretrained(self.directory)
        model.resize_token_embeddings(len(self.tokenizer))
        return model

    def ids(self, layout_tokens: np.ndarray) -> np.ndarray:
        """Layout token ids -> tokenizer ids (-1 stays -1)."""
        return np.where(layout_tokens >= 0, self.id_map[np.maximum(layout_tokens, 0)], -1)

    def text(self, layout_tokens: np.ndarray) -> str:
        return "".join(self.names[t] for t in layout_tokens if t >= 0)

    def encode(self, prompts: list[str]) -> np.ndarray:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_input, return_tensors="np")
        return batch["input_ids"].astype(np.int64)

    def history_inputs(self, item_tokens: np.ndarray, history: np.ndarray, users: np.ndarray) -> np.ndarray:
        prompts = [
            REC_PROMPT.format(history=" ".join(self.text(item_tokens[i]) for i in row if i >= 0)) for row in history
        ]
        return self.encode(prompts)

    def alignment_examples(self, codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Image -> text for every item, then text -> image (the layout's order), as prompts."""
        prompts, targets = [], []
        for source, target in (("image", "text"), ("text", "image")):
            src, dst = self.layout.block_tokens(source, codes[source]), self.layout.block_tokens(target, codes[target])
            prompts += [
                ALIGN_PROMPT.format(source=WORD[source], ids=self.text(row), target=WORD[target]) for row in src
            ]
            targets.append(self.ids(dst))
        return self.encode(prompts), np.concatenate(targets)
