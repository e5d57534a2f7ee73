"""Image download and the ViT/ResNet encoders, on generated images and tiny random models."""

import numpy as np
import pandas as pd
import pytest

from mmknockout.data.images import download_images
from mmknockout.features.vision import encode_images

PIL = pytest.importorskip("PIL.Image")
transformers = pytest.importorskip("transformers")


def make_images(folder, n=4):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"B00000000{i}.png"
        PIL.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def tiny_model(tmp_path, kind):
    d = tmp_path / kind
    if kind == "vit":
        cfg = transformers.ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=24,
            image_size=32,
            patch_size=8,
        )
        net = transformers.ViTModel(cfg, add_pooling_layer=True)
    else:
        cfg = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic")
        net = transformers.ResNetModel(cfg)
    net.save_pretrained(d)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)
    return d


@pytest.mark.parametrize("kind, dim", [("vit", 16), ("resnet", 12)])
def test_encoder_dims_and_mean_fill(tmp_path, kind, dim):
    paths = make_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    items = [paths[0], None, paths[1], tmp_path / "broken.jpg", paths[2]]
    feats, missing = encode_images(
        items, kind, model=str(tiny_model(tmp_path, kind)), batch_size=2, show_progress=False
    )
    assert feats.shape == (5, dim) and feats.dtype == np.float32
    assert missing == [1, 3]
    np.testing.assert_allclose(feats[1], feats[[0, 2, 4]].mean(axis=0), rtol=1e-5)
    again, _ = encode_images(items, kind, model=str(tmp_path / kind), batch_size=3, show_progress=False)
    np.testing.assert_allclose(feats, again, rtol=1e-4, atol=1e-5)


def test_vit_uses_cls_token(tmp_path):
    import torch

    paths = make_images(tmp_path, 1)
    model_dir = tiny_model(tmp_path, "vit")
    feats, _ = encode_images(paths, "vit", model=str(model_dir), show_progress=False)
    processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
    net = transformers.AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        cls = net(**processor(images=[PIL.open(paths[0]).convert("RGB")], return_tensors="pt")).last_hidden_state[0, 0]
    np.testing.assert_allclose(feats[0], cls.numpy(), rtol=1e-5, atol=1e-6)


def test_download_images_from_file_urls_with_failures(tmp_path):
    (tmp_path / "src").mkdir()
    src = make_images(tmp_path / "src", 2)
    meta = pd.DataFrame(
        {
            "asin": ["A1", "A2", "A3", "A4"],
            "imUrl": [src[0].as_uri(), src[1].as_uri(), (tmp_path / "gone.jpg").as_uri(), None],
        }
    )
    item_map = pd.DataFrame({"asin": ["A1", "A2", "A3", "A4"], "itemID": [0, 1, 2, 3]})
    out = download_images(meta, item_map, tmp_path / "img", tmp_path / "failures.tsv", threads=2)
    assert out["path"].notna().tolist() == [True, True, False, False]
    assert (tmp_path / "img" / "A1.png").read_bytes() == src[0].read_bytes()
    failures = (tmp_path / "failures.tsv").read_text().splitlines()
    assert [f.split("\t")[:2] for f in failures] == [["2", "A3"], ["3", "A4"]]
    assert failures[1].endswith("no imUrl")
