"""Token layouts of the generative variants: how an item's semantic ID becomes a token sequence.

One vocabulary per run (ids in this order): the specials ``<pad>`` (0), ``</s>`` (1), ``<unk>`` (2),
the alignment task tokens ``<txt2img>`` and ``<img2txt>``, the modality transition tokens
``<s-1>`` ... ``<s-(k-1)>``, then for every code block and level l (1-based) its ``codebook_size``
codes ``<txt-l-c>`` / ``<img-l-c>`` / ``<mm-l-c>``, the de-duplication digits ``<dd-c>`` and the
hashed user tokens ``<user-h>``. An item's sequence is

=============  ====================================================
TIGER-text     <txt-1-.> ... <txt-m-.> <dd-.>
TIGER-image    <img-1-.> ... <img-m-.> <dd-.>
MGR-EF         <mm-1-.> ... <mm-m-.> <dd-.>   (one RQ-VAE on the fused embedding)
MGR-LF         <txt-1-.> ... <txt-m-.> <img-1-.> ... <img-m-.> <dd-.>
MGR-LF++       <txt-1-.> ... <txt-m-.> <s-1> <img-1-.> ... <img-m-.> <dd-.>
=============  ====================================================

The de-duplication digit tells apart the items whose code blocks coincide; its range is the largest
such group. MGR-LF++'s alignment examples translate an item's image codes into its text codes and
back: ``<img2txt> <img-1-.> ... <img-m-.>`` -> ``<txt-1-.> ... <txt-m-.>`` (and ``<txt2img>`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .rqvae import dedup_digit

PAD, EOS, UNK = 0, 1, 2
SPECIALS = ("<pad>", "</s>", "<unk>", "<txt2img>", "<img2txt>")
TASK = {("image", "text"): "<img2txt>", ("text", "image"): "<txt2img>"}
PREFIX = {"text": "txt", "image": "img", "fused": "mm"}
IGNORE = -100  # label positions without a target (the loss skips them)

#: variant -> (code blocks in ID order, transition tokens between blocks, alignment pre-training)
VARIANTS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "TIGER-text": (("text",), False, False),
    "TIGER-image": (("image",), False, False),
    "MGR-EF": (("fused",), False, False),
    "MGR-LF": (("text", "image"), False, False),
    "MGR-LF++": (("text", "image"), True, True),
    "SASRec": ((), False, False),  # the ID-based baseline: no semantic IDs (mmknockout.genrec.sasrec)
}


@dataclass(frozen=True)
class TokenLayout:
    """The vocabulary and item token sequences of one variant."""

    blocks: tuple[str, ...]
    levels: int
    codebook_size: int
    dedup_size: int
    transition: bool
    user_buckets: int = 0

    @classmethod
    def of(cls, variant: str, levels: int, codebook_size: int, dedup_size: int, user_buckets: int = 0) -> TokenLayout:
        blocks, transition, _ = VARIANTS[variant]
        return cls(blocks, levels, codebook_size, dedup_size, transition, user_buckets)

    @property
    def n_transitions(self) -> int:
        return len(self.blocks) - 1 if self.transition else 0

    def code_offset(self, block: str, level: int) -> int:
        """The id of code 0 of ``block`` at 0-based ``level``."""
        start = len(SPECIALS) + len(self.blocks) - 1  # every layout reserves the transition ids alike
        return start + (self.blocks.index(block) * self.levels + level) * self.codebook_size

    @property
    def dedup_offset(self) -> int:
        return self.code_offset(self.blocks[-1], self.levels - 1) + self.codebook_size

    @property
    def user_offset(self) -> int:
        return self.dedup_offset + self.dedup_size

    @property
    def vocab_size(self) -> int:
        return self.user_offset + self.user_buckets

    @property
    def item_length(self) -> int:
        return len(self.blocks) * self.levels + self.n_transitions + 1

    def block_tokens(self, block: str, codes: np.ndarray) -> np.ndarray:
        """[n, levels] token ids of one block's codes [n, levels]."""
        return codes + np.array([self.code_offset(block, lv) for lv in range(self.levels)])

    def item_tokens(self, codes: Mapping[str, np.ndarray]) -> np.ndarray:
        """[n_items, item_length] token ids from each block's codes; the dedup digit is computed here."""
        digit, size = dedup_digit(np.concatenate([codes[b] for b in self.blocks], axis=1))
        if size > self.dedup_size:
            raise ValueError(f"a collision group of {size} items exceeds the layout's dedup_size {self.dedup_size}")
        parts = []
        for i, block in enumerate(self.blocks):
            if i and self.transition:
                parts.append(np.full((len(digit), 1), len(SPECIALS) + i - 1))
            parts.append(self.block_tokens(block, codes[block]))
        parts.append((self.dedup_offset + digit)[:, None])
        return np.concatenate(parts, axis=1).astype(np.int64)

    def alignment_examples(self, codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [2n, 1 + levels], targets [2n, levels]): image -> text for every item, then text -> image."""
        img, txt = self.block_tokens("image", codes["image"]), self.block_tokens("text", codes["text"])
        task = {pair: SPECIALS.index(tok) for pair, tok in TASK.items()}
        n = len(img)
        inputs = np.concatenate(
            [
                np.concatenate([np.full((n, 1), task["image", "text"]), img], axis=1),
                np.concatenate([np.full((n, 1), task["text", "image"]), txt], axis=1),
            ]
        )
        return inputs.astype(np.int64), np.concatenate([txt, img]).astype(np.int64)

    def user_token(self, users: np.ndarray) -> np.ndarray:
        """TIGER's hashed user token (user id modulo the buckets)."""
        return self.user_offset + users % self.user_buckets

    def history_inputs(self, item_tokens: np.ndarray, history: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Encoder inputs [n, 1 + H * item_length]: left padding, the user token (when there are user
        buckets), then the history items' tokens oldest first; ``history`` [n, H] is left-padded with -1."""
        n, h = history.shape
        length = self.item_length
        seq = np.where(history[:, :, None] >= 0, item_tokens[np.maximum(history, 0)], PAD).reshape(n, h * length)
        if not self.user_buckets:
            return seq
        full = np.concatenate([self.user_token(users)[:, None], seq], axis=1)
        pads = (history < 0).sum(1) * length
        j = np.arange(full.shape[1])[None, :]
        idx = np.where(
            j < pads[:, None], j + 1, np.where(j == pads[:, None], 0, j)
        )  # move the user token past the padding
        return np.take_along_axis(full, idx, axis=1)

    def names(self) -> list[str]:
        """The token strings, by id."""
        out = list(SPECIALS) + [f"<s-{i + 1}>" for i in range(len(self.blocks) - 1)]
        for block in self.blocks:
            out += [f"<{PREFIX[block]}-{lv + 1}-{c}>" for lv in range(self.levels) for c in range(self.codebook_size)]
        out += [f"<dd-{c}>" for c in range(self.dedup_size)]
        return out + [f"<user-{h}>" for h in range(self.user_buckets)]


def pad_labels(targets: np.ndarray, length: int) -> np.ndarray:
    """Targets [n, t <= length] padded to ``length`` with :data:`IGNORE`."""
    out = np.full((len(targets), length), IGNORE, dtype=np.int64)
    out[:, : targets.shape[1]] = targets
    return out
