"""Constrained beam search over a prefix trie of the valid item token sequences.

Every item's sequence has the same length L. At decoding step t a beam may only extend its prefix
by a token that continues some item's sequence, so after L steps every finished beam is a valid item;
distinct beams are distinct paths, hence distinct items: each item is returned at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PrefixTrie:
    """Per depth t: ``tokens[t]`` / ``next[t]`` [n_states_t, max_children] the child tokens of each
    length-t prefix and the states they lead to (-1 pads); ``items`` the item of each full-length state."""

    tokens: list[torch.Tensor]
    next: list[torch.Tensor]
    items: torch.Tensor

    @classmethod
    def build(cls, sequences: np.ndarray, item_ids: np.ndarray, device: torch.device | str = "cpu") -> PrefixTrie:
        """The trie of ``sequences`` [n, L] (unique rows), the token sequences of items ``item_ids``."""
        n, length = sequences.shape
        parent = np.zeros(n, dtype=np.int64)
        tokens, nexts = [], []
        for t in range(length):
            _, child = np.unique(sequences[:, : t + 1], axis=0, return_inverse=True)
            child = child.reshape(-1)
            edges = np.unique(np.stack([parent, child, sequences[:, t]], axis=1), axis=0)  # sorted by parent
            counts = np.bincount(edges[:, 0], minlength=parent.max() + 1)
            rank = np.arange(len(edges)) - np.repeat(np.cumsum(counts) - counts, counts)
            tok = np.full((len(counts), counts.max()), -1, dtype=np.int64)
            nxt = tok.copy()
            tok[edges[:, 0], rank], nxt[edges[:, 0], rank] = edges[:, 2], edges[:, 1]
            tokens.append(torch.as_tensor(tok, device=device))
            nexts.append(torch.as_tensor(nxt, device=device))
            parent = child
        items = np.full(parent.max() + 1, -1, dtype=np.int64)
        items[parent] = item_ids
        return cls(tokens, nexts, torch.as_tensor(items, device=device))

    @property
    def length(self) -> int:
        return len(self.tokens)


@torch.no_grad()
def constrained_beam_search(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, trie: PrefixTrie, beams: int
) -> torch.Tensor:
    """[batch, beams] the items of the best ``beams`` valid sequences by log-probability, best first
    (-1 where fewer items exist)."""
    from transformers.modeling_outputs import BaseModelOutput

    batch, device = input_ids.shape[0], input_ids.device
    hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    token = torch.full((batch, 1), model.config.decoder_start_token_id, dtype=torch.long, device=device)
    state = torch.zeros((batch, 1), dtype=torch.long, device=device)
    score = torch.zeros((batch, 1), device=device)
    cache, rows = None, torch.arange(batch, device=device)  # rows: the user of each beam
    for t in range(trie.length):
        width = state.shape[1]
        out = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]),
            attention_mask=attention_mask[rows],
            decoder_input_ids=token.reshape(-1, 1),
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values  # self- and cross-attention keys/values: one new token per step
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1).view(batch, width, -1)
        child_tok, child_next = trie.tokens[t][state], trie.next[t][state]  # [batch, width, C]
        cand = score[:, :, None] + logp.gather(2, child_tok.clamp(min=0))
        cand = cand.masked_fill(child_next < 0, -torch.inf).flatten(1)
        score, idx = cand.topk(min(beams, cand.shape[1]), dim=1)
        parent = idx // child_tok.shape[2]
        state = torch.where(torch.isfinite(score), child_next.flatten(1).gather(1, idx), 0)
        token = child_tok.flatten(1).gather(1, idx).clamp(min=0)  # dead beams (score -inf) decode padding
        if t + 1 < trie.length:
            users = torch.arange(batch, device=device)[:, None] * width
            cache.self_attention_cache.reorder_cache((users + parent).reshape(-1))
            if parent.shape[1] != width:  # every beam of a user shares its cross-attention keys and values
                cache.cross_attention_cache.reorder_cache(users.expand(-1, parent.shape[1]).reshape(-1))
            rows = torch.arange(batch, device=device).repeat_interleave(state.shape[1])
    items = torch.where(torch.isfinite(score), trie.items[state], -1)
    if items.shape[1] < beams:
        items = torch.cat([items, items.new_full((batch, beams - items.shape[1]), -1)], dim=1)
    return items
