"""Keyword side content from an LVLM's generated texts (Pomo et al. 2025, textual decoding).

The fill-in-the-blank prompt asks for five slot values (Baby: Category, Age Group, Purpose, Material,
Usage Context). From each item's generated text:

1. :func:`parse_slots` reads the five values. Real outputs mix ``[Category] {Feeding}, ...``,
   ``Category: Feeding, ...``, one slot per line, Markdown bold, the blanks' letters (``[A] {Feeding}``)
   and trailing punctuation; a slot that is absent or empty becomes ``Other``.
2. :func:`normalise` lower-cases, drops possessives and punctuation and lemmatises each word with a
   few suffix rules (no dictionary download): ``Babies`` -> ``baby``, ``Women's Shoes`` -> ``women shoe``.
3. :func:`cluster_keywords` groups near-duplicates per slot: average-linkage hierarchical clustering of
   the keywords' sentence embeddings under cosine distance, cut at ``distance_threshold``; a cluster is
   named after its most frequent member.
4. The ``top`` (50) most frequent clusters per slot are kept; every other value joins the slot's
   ``Other`` column, so the item x keyword matrix has ``slots x (top + 1)`` binary columns (255 for
   five slots) and exactly one 1 per slot in every row.

:func:`keywords_step` writes the one-hot matrix three ways: the dense float32 ``.npy`` every model and
knockout reads as the text slot, the same matrix as a sparse CSR ``.npz`` (no pickle) and a JSON
record with the vocabulary (the columns, each cluster's members) and every item's parsed slots.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError

OTHER = "Other"
BLANKS = re.compile(r"Fill in the blanks:\s*(.*?)\.\s*For example", re.S)
_FILLER = re.compile(r"[{}\[\]*\"`_]")
_POSSESSIVE = re.compile(r"['’]s\b|['’]")
_NON_WORD = re.compile(r"[^a-z0-9&+\-/ ]+")
_SPACES = re.compile(r"\s+")
#: endings that look plural but are not (glass, bus, analysis, ...), left alone
_KEEP_S = ("ss", "us", "is")


def slots_of(prompt: str) -> tuple[str, ...]:
    """The slot names of a fill-in-the-blank prompt (``Fill in the blanks: [A], [B], ... For example``)."""
    found = BLANKS.search(prompt)
    slots = tuple(re.findall(r"\[([^\]]+)\]", found.group(1))) if found else ()
    if not slots:
        raise InputError("the LVLM prompt names no slots ('Fill in the blanks: [..], ...'); keywords need it")
    return slots


def _marker(slots: Sequence[str]) -> re.Pattern:
    """A slot marker: ``[Slot]`` or ``Slot:`` (optionally bold, after a list dash or number)."""
    names = "|".join(re.escape(s).replace(r"\ ", r"\s+") for s in sorted(slots, key=len, reverse=True))
    return re.compile(
        rf"\[\s*\**\s*(?P<bracket>{names})\s*\**\s*\]\s*:?|(?<![A-Za-z])\**\s*(?P<colon>{names})\s*\**\s*[:=]",
        re.I,
    )


#: the blanks as letters (``[A] {Feeding}, [B] {Infant}, ...``), the i-th letter the i-th slot
LETTERS = re.compile(r"\[\s*(?P<bracket>[A-Z])\s*\]\s*:?")


def parse_slots(text: str, slots: Sequence[str]) -> dict[str, str]:
    """The raw value of every slot in ``text`` (first occurrence wins); absent or empty -> ``Other``.

    Slots are marked by name (``[Category] {X}``, ``Category: X``) or, when no name occurs, by the
    letter of their blank (``[A] {X}``, ``[B] {Y}``, ... in the prompt's slot order)."""
    canonical = {_SPACES.sub(" ", s.lower()): s for s in slots}
    matches = list(_marker(slots).finditer(text))
    if not matches:
        canonical = {chr(ord("a") + i): s for i, s in enumerate(slots)}
        matches = list(LETTERS.finditer(text))  # every letter ends the value before it
    values = dict.fromkeys(slots, OTHER)
    seen: set[str] = set()
    for match, nxt in zip(matches, [*matches[1:], None], strict=False):
        slot = canonical.get(_SPACES.sub(" ", (match.group("bracket") or match.group("colon") or "").lower()))
        if slot is None or slot in seen:
            continue
        seen.add(slot)
        raw = text[match.end() : nxt.start() if nxt else len(text)]
        value = _clean(raw)
        if value:
            values[slot] = value
    return values


def _clean(raw: str) -> str:
    """A slot value without braces, quotes, bold marks, leading separators and trailing punctuation."""
    value = _FILLER.sub(" ", raw).strip()
    value = next((line for line in value.splitlines() if line.strip()), "")
    return value.strip(" \t:-=,;.'").strip()


def lemma(word: str) -> str:
    """A word's singular by suffix rules: ies -> y, (s|x|z|ch|sh)es -> drop es, s -> drop (not ss/us/is)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def normalise(value: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed, each word lemmatised; ``Other`` stays."""
    if value == OTHER:
        return OTHER
    text = _SPACES.sub(" ", _NON_WORD.sub(" ", _POSSESSIVE.sub("", value.lower()))).strip()
    words = " ".join(lemma(w) for w in text.split(" ") if w)
    return words or OTHER


@dataclass(frozen=True)
class SlotVocabulary:
    """One slot's kept keywords (most frequent first, then ``Other``) and each keyword's cluster."""

    slot: str
    keywords: tuple[str, ...]
    members: dict[str, list[str]]  # kept keyword -> the normalised values merged into it
    column_of: dict[str, int]  # every normalised value -> its column within the slot


def cluster_keywords(
    values: Sequence[str], embed: Callable[[list[str]], np.ndarray], distance_threshold: float
) -> dict[str, str]:
    """Each distinct value (not ``Other``) -> its cluster's name: the cluster's most frequent member
    (ties by name). Clusters: average linkage on cosine distances of ``embed``'s vectors, cut at
    ``distance_threshold``; 0 keeps every distinct value apart."""
    counts = Counter(v for v in values if v != OTHER)
    distinct = sorted(counts)
    if len(distinct) < 2 or distance_threshold <= 0:
        return {v: v for v in distinct}
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    vectors = np.asarray(embed(distinct), dtype=np.float64)
    distances = np.clip(pdist(vectors, metric="cosine"), 0.0, 2.0)
    labels = fcluster(linkage(distances, method="average"), t=distance_threshold, criterion="distance")
    order = {v: i for i, v in enumerate(distinct)}
    name: dict[int, str] = {}
    for value in sorted(distinct, key=lambda v: (-counts[v], v)):
        name.setdefault(int(labels[order[value]]), value)
    return {v: name[int(labels[order[v]])] for v in distinct}


def slot_vocabulary(slot: str, values: Sequence[str], cluster_of: Mapping[str, str], top: int) -> SlotVocabulary:
    """The ``top`` most frequent clusters of one slot (ties by name) and ``Other`` for the rest."""
    counts = Counter(cluster_of.get(v, OTHER) for v in values)
    ranked = sorted((k for k in counts if k != OTHER), key=lambda k: (-counts[k], k))[:top]
    keywords = (*ranked, OTHER)
    index = {k: i for i, k in enumerate(keywords)}
    column_of = {v: index.get(c, len(ranked)) for v, c in cluster_of.items()}
    members = {k: sorted(v for v, c in cluster_of.items() if c == k) for k in ranked}
    members[OTHER] = sorted(v for v, c in cluster_of.items() if c not in index)
    return SlotVocabulary(slot, keywords, members, column_of)


def one_hot(parsed: Sequence[Mapping[str, str]], vocabularies: Sequence[SlotVocabulary]) -> sp.csr_matrix:
    """The binary item x keyword matrix: per slot one column block, exactly one 1 per row and block."""
    n_items = len(parsed)
    cols, offset = [], 0
    for vocab in vocabularies:
        other = len(vocab.keywords) - 1
        cols.append(offset + np.fromiter((vocab.column_of.get(row[vocab.slot], other) for row in parsed), np.int64))
        offset += len(vocab.keywords)
    columns = np.stack(cols, axis=1).ravel() if cols else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(n_items), len(vocabularies))
    data = np.ones(columns.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows, columns)), shape=(n_items, offset))


def build_keywords(
    texts: Sequence[str | None],
    slots: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    top: int = 50,
    distance_threshold: float = 0.2,
) -> tuple[sp.csr_matrix, list[SlotVocabulary], list[dict[str, str]]]:
    """Matrix, per-slot vocabularies and normalised slot values of every item (None: no text, all Other)."""
    parsed = [
        {s: normalise(v) for s, v in parse_slots(t, slots).items()} if t else dict.fromkeys(slots, OTHER) for t in texts
    ]
    vocabularies = []
    for slot in slots:
        values = [row[slot] for row in parsed]
        vocabularies.append(slot_vocabulary(slot, values, cluster_keywords(values, embed, distance_threshold), top))
    return one_hot(parsed, vocabularies), vocabularies, parsed


def vocabulary_record(vocabularies: Sequence[SlotVocabulary]) -> dict[str, Any]:
    """The JSON form of the vocabulary: ``columns`` (slot and keyword per column) and cluster members."""
    return {
        "columns": [{"slot": v.slot, "keyword": k} for v in vocabularies for k in v.keywords],
        "members": {v.slot: v.members for v in vocabularies},
    }


def load_keyword_matrix(path: str, n_items: int | None = None) -> sp.csr_matrix:
    """A keyword ``.npz`` (scipy sparse, no pickle) as CSR; ``n_items`` checks its row count."""
    from ..io import require_file

    path = require_file(path, "keyword matrix")
    try:
        matrix = sp.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a scipy sparse .npz keyword matrix ({exc})") from None
    if n_items is not None and matrix.shape[0] != n_items:
        raise InputError(f"{path}: {matrix.shape[0]} rows but the dataset has {n_items} items")
    return matrix


def read_generated_texts(source: str) -> tuple[tuple[str, ...], list[str | None]]:
    """The slots of an lvlm sidecar's prompt and every item's generated text (None: not encoded)."""
    import json

    from ..io import read_error, require_file

    path = require_file(source, "lvlm sidecar")
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise read_error(path, exc) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON sidecar ({exc})") from None
    if not isinstance(facts, dict) or "generated_texts" not in facts:
        raise InputError(f"{path}: no generated_texts; the keywords need an lvlm encoder's sidecar")
    n_items = int(facts["n_items"])
    texts: list[str | None] = [None] * n_items
    for row in facts["generated_texts"]:
        item = row.get("itemID")
        if not isinstance(item, int) or not 0 <= item < n_items or not isinstance(row.get("text"), str):
            raise InputError(f"{path}: generated_texts entry {row!r} needs an itemID in [0, {n_items}) and a text")
        texts[item] = row["text"]
    return slots_of(facts["encoder"]["prompt"]), texts


def keywords_step(
    *,
    source: str,
    features: str,
    matrix: str,
    vocabulary: str,
    encoder: Mapping[str, Any],
    device: str,
    threads: int | None = None,
) -> None:
    """Workflow step: the keyword one-hot of the LVLM features whose sidecar is ``source``.

    ``encoder`` is the keywords encoder spec (``text_encoder``, ``top``, ``distance_threshold``).
    Writes ``features`` (dense float32 ``.npy``), ``matrix`` (CSR ``.npz``) and ``vocabulary`` (JSON).
    """
    from ..device import set_threads
    from ..io import atomic_path, write_json, write_npy
    from .text import encode, load_encoder

    set_threads(threads)
    slots, texts = read_generated_texts(source)
    model = load_encoder(encoder["text_encoder"], device=None if device == "auto" else device)

    def embed(values: list[str]) -> np.ndarray:
        return encode(values, model=model, model_name=encoder["text_encoder"], show_progress=False)

    onehot, vocabularies, parsed = build_keywords(
        texts, slots, embed, top=encoder["top"], distance_threshold=encoder["distance_threshold"]
    )
    write_npy(features, onehot.toarray().astype(np.float32))
    with atomic_path(matrix, suffix=".npz") as tmp:
        sp.save_npz(tmp, onehot, compressed=True)
    write_json(
        vocabulary,
        {
            "source": source,
            "spec": dict(encoder),
            "slots": list(slots),
            "n_items": onehot.shape[0],
            "dim": onehot.shape[1],
            **vocabulary_record(vocabularies),
            "items": [{"itemID": i, **row} for i, row in enumerate(parsed)],
        },
    )
