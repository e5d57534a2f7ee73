"""Tiny randomly initialised models for tests and the demo, saved so ``from_pretrained(dir)`` loads them.

No weights are downloaded: each model is built from a small config with a fixed seed, and its
tokenizer from a tiny BPE vocabulary written offline. The BPE helpers here are shared with the
Qwen2-VL kit (:mod:`mmknockout.features.tiny_qwen`):

* :func:`byte_alphabet` -- the 256 symbols of byte-level BPE (every UTF-8 text is covered);
* :func:`bpe_vocab` -- a vocabulary and merge list over an alphabet, optional end-of-word variants
  (CLIP's ``</w>``) and special tokens appended last;
* :func:`write_bpe_files` -- ``vocab.json`` + ``merges.txt``, the files BPE tokenizers load.

A Qwen2 tokenizer, for example, is ``Qwen2Tokenizer(vocab=v, merges=m, ...)`` with
``v, m = bpe_vocab(byte_alphabet(), special_tokens=[...])``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
END_OF_WORD = "</w>"
DEFAULT_MERGES = (("t", "h"), ("e", "r"), ("i", "n"), ("a", "n"), ("o", "n"), ("th", "e"))
SEED = 0


def byte_alphabet() -> list[str]:
    """The 256 byte-level BPE symbols (GPT-2's byte-to-unicode map), sorted."""
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def bpe_vocab(
    alphabet: Iterable[str],
    merges: Sequence[tuple[str, str]] = DEFAULT_MERGES,
    special_tokens: Sequence[str] = (),
    end_of_word: str = "",
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A BPE vocabulary (token -> id) and its merges (``(left, right)`` pairs, in priority order).

    Ids: the alphabet, then (if ``end_of_word``) each symbol with that suffix, then each merge's
    result (and its end-of-word form), then ``special_tokens``. With ``end_of_word`` every merge is
    also given in its word-final form, as CLIP's vocabulary has both.
    """
    symbols = list(dict.fromkeys(alphabet))
    tokens = symbols + ([s + end_of_word for s in symbols] if end_of_word else [])
    pairs = []
    for left, right in merges:
        tokens.append(left + right)
        pairs.append((left, right))
        if end_of_word:
            tokens.append(left + right + end_of_word)
            pairs.append((left, right + end_of_word))
    tokens += list(special_tokens)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return vocab, pairs


def write_bpe_files(directory: str | Path, vocab: dict[str, int], merges: Sequence[tuple[str, str]]) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` into ``directory`` (created); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in merges)]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def clip_tokenizer(directory: str | Path, max_length: int = 77):
    """A ``CLIPTokenizer`` over the byte alphabet (plain and ``</w>`` forms), saved into ``directory``.

    Like real CLIP's vocabulary it covers every byte, so no text meets the unknown token (which is
    ``<|endoftext|>``, the token CLIP pools at). 528 tokens.
    """
    from transformers import CLIPTokenizer

    vocab, merges = bpe_vocab(byte_alphabet(), special_tokens=CLIP_SPECIALS, end_of_word=END_OF_WORD)
    write_bpe_files(directory, vocab, merges)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    tokenizer.save_pretrained(directory)
    return tokenizer


def tiny_clip(directory: str | Path, image_size: int = 32, max_positions: int = 77) -> Path:
    """Build a tiny random ``CLIPModel`` with its tokenizer and PIL image processor in ``directory``.

    Text and vision towers: hidden 32, 2 layers, 2 heads; images ``image_size`` px in 8-px patches;
    projection dim 16; ``max_positions`` text positions (77 as in real CLIP). Seeded: the same
    directory contents on every call.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    directory = Path(directory)
    tokenizer = clip_tokenizer(directory, max_positions)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": max_positions,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tower, "image_size": image_size, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(SEED)
    CLIPModel(config).eval().save_pretrained(directory)
    images = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(directory)
    return directory
