"""Item records from the Amazon files, the encoder registry and the encode step end to end."""

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from mmknockout import __version__
from mmknockout.errors import InputError
from mmknockout.features.text import item_text
from mmknockout.features.tiny import tiny_clip
from mmknockout.features.vl import KINDS, Item, build_encoder, encode_step, leaf_category, load_items

META = [
    {
        "asin": "B000000001",
        "title": "Soft Blanket",
        "brand": "Acme",
        "categories": [["Baby", "Nursery", "Bedding"], ["Gifts"]],
        "description": "Warm\nand soft.",
        "imUrl": "http://x/1.jpg",
    },
    {"asin": "0097293751", "title": "Bottle", "categories": [["Baby", "Feeding"]]},
    {"asin": "B000000003", "brand": "Zed"},
    {"asin": "B000000004", "title": "Rattle", "categories": [["Baby"]], "description": "Loud."},
]
# itemID order differs from the metadata order; B000000099 has no metadata row
MAPPING = [("B000000003", 0), ("B000000001", 1), ("0097293751", 2), ("B000000004", 3), ("B000000099", 4)]


def write_fixture(folder, image_rows=None):
    """Metadata (Python literals, gzip), mapping and image index (+ PNGs) in ``folder``."""
    meta = folder / "meta.json.gz"
    with gzip.open(meta, "wt") as fh:
        fh.write("\n".join(repr(rec) for rec in META) + "\n")
    mapping = folder / "i_id_mapping.csv"
    mapping.write_text("asin\titemID\n" + "".join(f"{a}\t{i}\n" for a, i in MAPPING))
    (folder / "images").mkdir()
    paths = {}
    for item in (1, 2):
        paths[item] = folder / "images" / f"{item}.png"
        Image.new("RGB", (20 + item, 30), (100 * item, 50, 200)).save(paths[item])
    rows = image_rows or [
        (0, "B000000003", ""),
        (1, "B000000001", paths[1]),
        (2, "0097293751", paths[2]),
        (3, "B000000004", folder / "images" / "gone.png"),
        (4, "B000000099", ""),
    ]
    index = folder / "index.tsv"
    index.write_text("itemID\tasin\tpath\n" + "".join(f"{i}\t{a}\t{p}\n" for i, a, p in rows))
    return meta, mapping, index, paths


def test_load_items_fields_order_and_images(tmp_path):
    meta, mapping, index, paths = write_fixture(tmp_path)
    items = load_items(str(meta), str(mapping), str(index))
    assert [it.item_id for it in items] == [0, 1, 2, 3, 4]
    blanket = items[1]
    assert blanket.title == "Soft Blanket" and blanket.category == "Bedding" and blanket.image == paths[1]
    assert blanket.text == item_text("Soft Blanket", "Acme", META[0]["categories"], "Warm\nand soft.")
    assert (items[0].title, items[0].category, items[0].image) == ("", "", None)
    assert items[2].category == "Feeding" and items[2].image == paths[2]
    assert items[3].image is None  # listed path that does not exist
    assert items[4] == Item(item_id=4, title="", category="", text=item_text(None, None, None, None), image=None)


def test_load_items_without_index_has_no_images(tmp_path):
    meta, mapping, _, _ = write_fixture(tmp_path)
    assert all(it.image is None for it in load_items(str(meta), str(mapping), None))


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(7, "B000000003", "")], "itemID '7' is not in the item mapping"),
        ([(0, "B000000001", "")], "differs from the mapping"),
    ],
)
def test_bad_image_index_names_file_and_line(tmp_path, rows, message):
    meta, mapping, index, _ = write_fixture(tmp_path, image_rows=rows)
    with pytest.raises(InputError, match=f"index.tsv: line 2: .*{message}"):
        load_items(str(meta), str(mapping), str(index))


def test_image_index_header_checked(tmp_path):
    meta, mapping, index, _ = write_fixture(tmp_path)
    index.write_text("item\tpath\n0\t\n")
    with pytest.raises(InputError, match="header must be itemID, asin, path"):
        load_items(str(meta), str(mapping), str(index))


def test_leaf_category():
    assert leaf_category([["Baby", "Feeding", "Bottles"], ["Other"]]) == "Bottles"
    assert leaf_category([]) == "" and leaf_category(float("nan")) == "" and leaf_category("Baby") == ""


def test_kinds_and_unknown_kind():
    assert KINDS == {
        "clip": "mmknockout.features.clip:ClipEncoder",
        "vlm2vec": "mmknockout.features.vlm2vec:Vlm2VecEncoder",
        "lvlm": "mmknockout.features.lvlm:LvlmEncoder",
        "vlm_caption": "mmknockout.features.caption:CaptionEncoder",
    }
    with pytest.raises(InputError, match="encoder kind 'resnet' is not one of"):
        build_encoder({"kind": "resnet"}, "cpu")


@pytest.mark.parametrize("tower", ["image", "text"])
def test_encode_step_with_tiny_clip(tmp_path, tower):
    meta, mapping, index, _ = write_fixture(tmp_path)
    model = tiny_clip(tmp_path / "clip")
    spec = {"kind": "clip", "model": str(model), "tower": tower, "batch_size": 2, "chunk_size": 2}
    features, sidecar = tmp_path / "out" / "clip.npy", tmp_path / "out" / "clip.json"
    encode_step(
        metadata=str(meta),
        item_map=str(mapping),
        features=str(features),
        sidecar=str(sidecar),
        encoder=spec,
        device="cpu",
        images_index=str(index),
        threads=1,
    )
    matrix = np.load(features)
    facts = json.loads(sidecar.read_text())
    assert matrix.shape == (5, 16) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    assert facts["kind"] == "clip" and facts["spec"] == spec and facts["n_items"] == 5 and facts["dim"] == 16
    assert facts["dtype"] == "float32" and facts["mmknockout_version"] == __version__ and facts["device"] == "cpu"
    assert facts["encoder"]["tower"] == tower and facts["encoder"]["model"] == str(model)
    if tower == "image":
        assert facts["missing_items"] == [0, 3, 4] and facts["encoder"]["max_length"] is None
        np.testing.assert_allclose(matrix[[0, 3, 4]], [matrix[[1, 2]].mean(axis=0)] * 3, rtol=1e-5)
    else:
        assert facts["missing_items"] == [] and facts["encoder"]["max_length"] == 77
    assert sorted(p.name for p in features.parent.iterdir()) == ["clip.json", "clip.npy"]


def test_input_knockouts_blank_the_image_or_empty_the_text(tmp_path):
    from PIL import Image

    from mmknockout.features.vl import Item, knock_out_inputs

    real = tmp_path / "real.png"
    Image.new("RGB", (8, 8), "red").save(real)
    items = [Item(0, "Crib", "Cribs", "Crib Acme Cribs", real), Item(1, "Toy", "Toys", "Toy", None)]
    blank = tmp_path / ".features.npy.blank.png"
    assert knock_out_inputs(items, {}, blank) == items and not blank.exists()
    blanked = knock_out_inputs(items, {"image": "blank"}, blank)
    assert blanked[0].image == blank and blanked[1].image is None  # items without an image stay mean-filled
    assert blanked[0].text == "Crib Acme Cribs"
    with Image.open(blank) as im:
        assert im.size == (224, 224) and (np.asarray(im) == 255).all()
    emptied = knock_out_inputs(items, {"text": "empty"}, blank)
    assert [(i.title, i.category, i.text) for i in emptied] == [("", "", "")] * 2
    assert emptied[0].image == real
