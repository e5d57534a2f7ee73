"""A tiny random T5 with a word-level tokenizer, saved so ``from_pretrained(directory)`` loads both.

For tests of the pretrained mode (:class:`~mmknockout.genrec.encoding.PromptEncoding`) without any
download: the vocabulary is the specials (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, T5's ids) and the
words of the prompts, split on whitespace and punctuation.
"""

from __future__ import annotations

import re
from pathlib import Path

from .encoding import ALIGN_PROMPT, REC_PROMPT

SEED = 0


def prompt_words() -> list[str]:
    text = " ".join([REC_PROMPT, ALIGN_PROMPT, "text image"])
    return sorted(set(re.findall(r"\w+|[^\w\s]", re.sub(r"\{\w+\}", " ", text))))


def tiny_t5(directory: str | Path, d_model: int = 16) -> Path:
    """Write a tiny T5ForConditionalGeneration and its tokenizer to ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    vocab = {tok: i for i, tok in enumerate(["<pad>", "</s>", "<unk>", *prompt_words()])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(SEED)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=d_model,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    out = Path(directory)
    T5ForConditionalGeneration(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out
