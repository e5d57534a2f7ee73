"""Constrained beam search: only valid items, each once, in the order of their exact log-probability."""

from __future__ import annotations

import numpy as np
import torch

from mmknockout.genrec.beam import PrefixTrie, constrained_beam_search
from mmknockout.genrec.seq2seq import T5Settings, build_t5

TINY = T5Settings(d_model=16, num_layers=1, num_heads=2, d_kv=8, d_ff=32, dropout=0.0)


def sequence_logprob(model, inputs: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """log p(seq | inputs) of every candidate sequence by teacher forcing: [batch, n_candidates]."""
    b, n = inputs.shape[0], seqs.shape[0]
    x = inputs.repeat_interleave(n, dim=0)
    labels = seqs.repeat(b, 1)
    logits = model(input_ids=x, attention_mask=x != 0, labels=labels).logits
    logp = torch.log_softmax(logits, -1).gather(2, labels[:, :, None]).squeeze(2).sum(1)
    return logp.view(b, n)


def test_trie_children_and_items():
    seqs = np.array([[5, 7, 9], [5, 8, 9], [6, 7, 10]])
    trie = PrefixTrie.build(seqs, np.array([11, 12, 13]))
    assert trie.tokens[0].tolist() == [[5, 6]]
    assert sorted(trie.tokens[1][trie.next[0][0, 0]].tolist()) == [7, 8]
    assert sorted(trie.items.tolist()) == [11, 12, 13]


def test_beam_matches_brute_force_ranking():
    rng = np.random.default_rng(0)
    n_items, vocab = 12, 20
    seqs = np.unique(rng.integers(3, vocab, size=(40, 3)), axis=0)[:n_items]
    item_ids = np.arange(100, 100 + len(seqs))
    model = build_t5(vocab, TINY, seed=0).eval()
    trie = PrefixTrie.build(seqs, item_ids)
    inputs = torch.as_tensor(rng.integers(3, vocab, size=(4, 6)))
    with torch.no_grad():
        exact = sequence_logprob(model, inputs, torch.as_tensor(seqs))
        full = constrained_beam_search(model, inputs, inputs != 0, trie, beams=len(seqs))
    expected = item_ids[exact.argsort(dim=1, descending=True).numpy()]
    np.testing.assert_array_equal(full.numpy(), expected)  # a beam as wide as the catalogue is exhaustive


def test_beam_returns_valid_items_once_and_pads():
    rng = np.random.default_rng(1)
    seqs = np.array([[3, 4, 5], [3, 4, 6], [7, 8, 9]])
    model = build_t5(12, TINY, seed=1).eval()
    trie = PrefixTrie.build(seqs, np.array([0, 1, 2]))
    inputs = torch.as_tensor(rng.integers(3, 12, size=(5, 4)))
    with torch.no_grad():
        out = constrained_beam_search(model, inputs, inputs != 0, trie, beams=5).numpy()
    assert out.shape == (5, 5)
    assert (out[:, 3:] == -1).all()
    for row in out:
        assert sorted(row[:3].tolist()) == [0, 1, 2]


def test_narrow_beam_only_valid_items():
    rng = np.random.default_rng(2)
    seqs = np.unique(rng.integers(3, 30, size=(60, 4)), axis=0)
    model = build_t5(30, TINY, seed=2).eval()
    trie = PrefixTrie.build(seqs, np.arange(len(seqs)))
    inputs = torch.as_tensor(rng.integers(3, 30, size=(3, 8)))
    with torch.no_grad():
        out = constrained_beam_search(model, inputs, inputs != 0, trie, beams=7).numpy()
        exact = sequence_logprob(model, inputs, torch.as_tensor(seqs))
    assert ((out >= 0) & (out < len(seqs))).all()
    assert all(len(set(row)) == 7 for row in out)
    # the returned items come best first by their exact sequence log-probability
    scores = exact.gather(1, torch.as_tensor(out))
    assert (scores[:, :-1] >= scores[:, 1:] - 1e-5).all()
