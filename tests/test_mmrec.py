"""Import of a dataset folder in MMRec layout."""

import json

import numpy as np
import pandas as pd
import pytest

from mmknockout.data.dataset import NeighbourGraph, SplitData, item_count
from mmknockout.data.mmrec import import_mmrec
from mmknockout.errors import InputError


def _mmrec_folder(path, n_users=6, n_items=5, graph=True):
    path.mkdir()
    rows = []
    for u in range(n_users):
        items = [(u + j) % n_items for j in range(4)]
        for j, i in enumerate(items):
            rows.append((u, i, 5.0, 1000 + j, [0, 0, 1, 2][j]))
    df = pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp", "x_label"])
    df = df.sample(frac=1, random_state=0)  # not sorted by user
    df.to_csv(path / "toy.inter", sep="\t", index=False)
    rng = np.random.default_rng(0)
    np.save(path / "text_feat.npy", rng.random((n_items, 7)).astype(np.float32))
    np.save(path / "image_feat.npy", rng.random((n_items, 11)))  # float64 as upstream
    if graph:
        g = {0: [[1, 2], [3, 1]], 1: [[0], [3]], 3: [[], []]}
        np.save(path / "user_graph_dict.npy", g, allow_pickle=True)
    return df


def test_import_round_trip(tmp_path):
    src = tmp_path / "mmrec"
    df = _mmrec_folder(src)
    out = tmp_path / "out"
    stats = import_mmrec(src, "toy", out)
    data = SplitData.from_inter(out / "toy.inter")
    assert (data.n_users, data.n_items) == (6, 5)
    assert (np.diff(data.users) >= 0).all()
    got = sorted(zip(data.users, data.items, data.labels, strict=True))
    assert got == sorted(zip(df.userID, df.itemID, df.x_label, strict=True))  # split kept as given
    assert stats["train"] == 12 and stats["valid"] == 6 and stats["test"] == 6
    assert stats["feature_dims"] == {"text": 7, "image": 11}
    t = np.load(out / "features" / "text_provided.npy")
    v = np.load(out / "features" / "image_provided.npy")
    assert t.dtype == v.dtype == np.float32 and t.shape == (5, 7) and v.shape == (5, 11)
    np.testing.assert_allclose(v, np.load(src / "image_feat.npy"), rtol=1e-6)
    g = NeighbourGraph.load(out / "user_graph.npz")
    assert g.ids.shape == (6, 2)
    assert g.ids[0].tolist() == [1, 2] and g.weights[0].tolist() == [3, 1]
    assert g.ids[1].tolist() == [0, -1] and g.weights[1].tolist() == [3, 0]
    assert g.ids[3].tolist() == [-1, -1] and g.ids[5].tolist() == [-1, -1]
    assert (out / "i_id_mapping.csv").read_text().splitlines()[0] == "asin\titemID"
    assert stats["mappings"] == {"user": "identity", "item": "identity"}


def test_import_without_graph(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src, graph=False)
    stats = import_mmrec(src, "toy", tmp_path / "out")
    assert stats["user_graph"] is None and not (tmp_path / "out" / "user_graph.npz").exists()


def test_feature_row_mismatch(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    np.save(src / "text_feat.npy", np.zeros((4, 7), np.float32))
    with pytest.raises(InputError, match=r"disagree on the number of items: text_feat.npy has 4 rows, image_feat.npy"):
        import_mmrec(src, "toy", tmp_path / "out")
    assert not (tmp_path / "out" / "toy.inter").exists()
    (src / "image_feat.npy").unlink()  # only text features, fewer rows than the ids need
    with pytest.raises(InputError, match=r"line \d+: itemID 4 is not below the item count 4 \(the rows of text_feat"):
        import_mmrec(src, "toy", tmp_path / "out")
    assert not (tmp_path / "out" / "toy.inter").exists()


def test_nan_feature(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    v = np.load(src / "image_feat.npy")
    v[3, 4] = np.nan
    np.save(src / "image_feat.npy", v)
    with pytest.raises(InputError, match=r"image_feat.npy.*row 3 \(itemID 3\), column 4"):
        import_mmrec(src, "toy", tmp_path / "out")


def test_bad_labels_and_ids(tmp_path):
    src = tmp_path / "mmrec"
    df = _mmrec_folder(src)
    bad = df.copy()
    bad.iloc[2, bad.columns.get_loc("x_label")] = 3
    bad.to_csv(src / "toy.inter", sep="\t", index=False)
    with pytest.raises(InputError, match="x_label must be 0, 1 or 2; line 4"):
        import_mmrec(src, "toy", tmp_path / "out")
    bad = df[df.userID != 2]  # user ids no longer contiguous
    bad.to_csv(src / "toy.inter", sep="\t", index=False)
    with pytest.raises(InputError, match="userID must be contiguous"):
        import_mmrec(src, "toy", tmp_path / "out")


def test_missing_inter(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    with pytest.raises(InputError, match="interaction file not found"):
        import_mmrec(src, "other", tmp_path / "out")


def test_bad_graph_dict(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    np.save(src / "user_graph_dict.npy", {0: [[99], [1]]}, allow_pickle=True)
    with pytest.raises(InputError, match="user 0: neighbour id outside"):
        import_mmrec(src, "toy", tmp_path / "out")


def test_items_without_interactions(tmp_path):
    """Item ids need not all be used: the item count is the feature rows, and training sees every item."""
    from mmknockout.data.graphs import graphs_step

    src = tmp_path / "mmrec"
    df = _mmrec_folder(src, n_items=5)
    df[df.itemID != 2].to_csv(src / "toy.inter", sep="\t", index=False)  # item 2 never used
    rng = np.random.default_rng(1)
    for name, dim in (("text_feat.npy", 7), ("image_feat.npy", 11)):
        np.save(src / name, rng.random((7, dim)).astype(np.float32))  # items 5 and 6: no interactions
    out = tmp_path / "out"
    stats = import_mmrec(src, "toy", out)
    assert stats["items"] == 7 and stats["items_with_interactions"] == 4
    assert np.load(out / "features" / "text_provided.npy").shape == (7, 7)
    with pytest.raises(InputError, match="itemID must be contiguous"):  # without the count: refused
        SplitData.from_inter(out / "toy.inter")
    data = SplitData.from_inter(out / "toy.inter", item_count(out / "stats.json"))
    assert data.n_items == 7 and data.train_matrix.shape == (6, 7)
    graphs_step(
        inter=str(out / "toy.inter"),
        stats=str(out / "stats.json"),
        user=str(tmp_path / "u.npz"),
        item=str(tmp_path / "i.npz"),
        user_k=3,
        item_k=2,
        item_min_count=1,
    )
    assert NeighbourGraph.load(tmp_path / "i.npz").ids.shape[0] == 7
    with pytest.raises(InputError, match=r"line \d+: itemID \d is not below the item count 3 \(the dataset's stats"):
        SplitData.from_inter(out / "toy.inter", 3)


def test_item_mapping_counts_every_item(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    np.save(src / "text_feat.npy", np.ones((6, 7), np.float32))
    np.save(src / "image_feat.npy", np.ones((6, 11), np.float32))
    pd.DataFrame({"asin": [f"B{i}" for i in range(5)], "itemID": range(5)}).to_csv(
        src / "i_id_mapping.csv", sep="\t", index=False
    )
    with pytest.raises(InputError, match="i_id_mapping.csv: 5 rows but the dataset has 6 items"):
        import_mmrec(src, "toy", tmp_path / "out")


@pytest.mark.parametrize("model", ["BPR", "VBPR"])
def test_training_ranks_items_without_interactions(tmp_path, model, monkeypatch):
    """An imported folder with unused item ids trains over every item of the feature files."""
    from mmknockout import run

    import model_kit

    src = tmp_path / "mmrec"
    _mmrec_folder(src, n_users=6, n_items=5, graph=False)
    for name, dim in (("text_feat.npy", 7), ("image_feat.npy", 11)):
        np.save(src / name, np.random.default_rng(2).random((8, dim)).astype(np.float32))  # 3 items never used
    out = tmp_path / "out"
    import_mmrec(src, "toy", out)
    seen = []
    fit = run.fit
    monkeypatch.setattr(run, "fit", lambda cls, data, *a, **k: seen.append(data.n_items) or fit(cls, data, *a, **k))
    features = {"text": out / "features" / "text_provided.npy", "image": out / "features" / "image_provided.npy"}
    spec = model_kit.run_spec(model, model_kit.params(model), training={"epochs": 2, "patience": 1})
    common = {"user_graph": None, "item_graph": None, **model_kit.run_outputs(tmp_path / "run")}
    run.train_run(spec, inter=out / "toy.inter", features=features, stats=out / "stats.json", **common)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert seen == [8] and record["status"] == "ok" and all(np.isfinite(v) for v in record["test"].values())
    if model == "VBPR":  # without stats.json the item count is max id + 1: the feature rows are refused, never cut
        with pytest.raises(InputError, match="have 8 rows but the dataset has 5 items"):
            run.train_run(spec, inter=out / "toy.inter", features=features, **common)
