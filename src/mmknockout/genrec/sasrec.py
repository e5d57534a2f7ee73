"""SASRec (Kang and McAuley, 2018), the ID-based sequential baseline of the generative study.

Item embeddings E (id 0 is padding, item i is i + 1) plus learned positions (counted back from the
last item, so the amount of left padding does not matter), ``blocks`` causal
self-attention blocks (pre-layer-norm, as the reference implementation normalises before attention
and feed-forward), a final layer norm; the score of item j after a history is h_last . E_j. Trained
with the paper's binary cross-entropy on the target and one uniformly drawn negative item; ranked by
the scores over every item. Knockouts do not reach it: it reads no features.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class SASRecSettings:
    hidden: int = 50
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.5
    max_len: int = 50


class SASRec(nn.Module):
    def __init__(self, n_items: int, s: SASRecSettings) -> None:
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, s.hidden, padding_idx=0)
        self.positions = nn.Embedding(s.max_len, s.hidden)
        layer = nn.TransformerEncoderLayer(
            s.hidden, s.heads, s.hidden, s.dropout, activation="relu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, s.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(s.hidden)
        self.drop = nn.Dropout(s.dropout)

    def last_state(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[batch, hidden] the state after the last position of left-padded histories (ids item + 1)."""
        length = input_ids.shape[1]
        max_len = self.positions.num_embeddings
        if length > max_len:
            input_ids, length = input_ids[:, -max_len:], max_len
        pos = torch.arange(max_len - length, max_len, device=input_ids.device)  # counted from the last item
        x = self.drop(self.items(input_ids) * self.items.embedding_dim**0.5 + self.positions(pos))
        h = self.encoder(x, mask=self._mask(input_ids))
        return self.norm(h[:, -1])

    def _mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[batch * heads, L, L] True = blocked: later positions and padding, never a position itself
        (a padding row that blocked every key would turn into NaN)."""
        length = input_ids.shape[1]
        eye = torch.eye(length, dtype=torch.bool, device=input_ids.device)
        causal = torch.triu(torch.ones_like(eye), diagonal=1)
        blocked = (causal[None] | (input_ids == 0)[:, None, :]) & ~eye[None]
        return blocked.repeat_interleave(self.encoder.layers[0].self_attn.num_heads, dim=0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> SimpleNamespace:
        """BCE of the target item (``labels[:, 0]``, an item id) against one random negative."""
        h = self.last_state(input_ids)
        pos = labels[:, 0] + 1
        neg = torch.randint(1, self.n_items + 1, pos.shape, device=pos.device)
        pos_logit = (h * self.items(pos)).sum(-1)
        neg_logit = (h * self.items(neg)).sum(-1)
        loss = nn.functional.softplus(-pos_logit).mean() + nn.functional.softplus(neg_logit).mean()
        return SimpleNamespace(loss=loss)

    @torch.no_grad()
    def rank(self, input_ids: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
        """[batch, k] the item ids of the k highest scores among ``allowed`` (a bool mask over items)."""
        scores = self.last_state(input_ids) @ self.items.weight[1:].T
        return scores.masked_fill(~allowed, -torch.inf).topk(k, dim=1).indices


def history_inputs(history: np.ndarray) -> np.ndarray:
    """Left-padded item-id histories (-1 pads) as SASRec inputs: item i -> i + 1, padding -> 0."""
    return np.where(history >= 0, history + 1, 0).astype(np.int64)
