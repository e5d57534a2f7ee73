"""Figures from hand-made frames: files are written and byte-stable."""

import numpy as np
import pandas as pd
from test_tables import REFERENCE, make_knockout

from mmknockout.analysis import plots, tables


def _twice(tmp_path, draw):
    out = []
    for i in range(2):
        path = tmp_path / f"f{i}.png"
        draw(path)
        out.append(path.read_bytes())
    assert out[0] == out[1] and len(out[0]) > 5000
    return tmp_path / "f0.png"


def test_family_order():
    assert plots.ordered_models(["PGL", "BPR", "VBPR", "FREEDOM", "MMGCN", "BM3", "Mine"]) == [
        "BPR",
        "VBPR",
        "BM3",
        "MMGCN",
        "FREEDOM",
        "PGL",
        "Mine",
    ]


def test_fig1(tmp_path):
    summary = tables.seed_summary(make_knockout(seeds=(1, 2, 3), jitter=0.05), ["NDCG@10", "Recall@10"])
    _twice(tmp_path, lambda p: plots.fig1_knockout(summary, "baby", "default", p))


def test_fig2(tmp_path):
    summary = tables.seed_summary(make_knockout(), ["NDCG@10"])
    _twice(tmp_path, lambda p: plots.fig2_noise_vs_constant(summary, {"baby": "default", "demo": "default"}, p))


def test_fig3(tmp_path):
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((100, 2))
    labels = np.array(["text"] * 50 + ["image"] * 50)
    stats = pd.DataFrame(
        [
            {
                "modality": m,
                "encoder": m,
                "n_items": 50,
                "n_zero_rows": 0,
                "dimension": d,
                "mean_pairwise_cosine": 0.5,
                "mean_distance_to_centroid": 0.6,
                "effective_rank": 12.0,
                "top10_variance_share": 0.4,
            }
            for m, d in (("text", 384), ("image", 4096))
        ]
    )
    spectra = {"text": np.linspace(1, 0.01, 50), "image": np.geomspace(1, 1e-4, 50)}
    _twice(tmp_path, lambda p: plots.fig3_embeddings(coords, labels, spectra, stats, "Fig. 3", p))


def test_ours_vs_published(tmp_path):
    summary = tables.seed_summary(make_knockout(datasets=("baby",)))
    ours = {
        4: tables.appendix_table(summary, {"baby": "default"}, "baseline"),
        5: tables.appendix_table(summary, {"baby": "default"}, "dual-noise"),
    }
    pub = {
        n: tables.read_reference_table(REFERENCE / f"table{n}_{c}.csv") for n, c in ((4, "baseline"), (5, "dual-noise"))
    }
    comp = tables.ours_vs_published(ours, pub, {4: "baseline", 5: "dual-noise"})
    _twice(tmp_path, lambda p: plots.ours_vs_published(comp, p))
    empty = comp.iloc[0:0]
    _twice(tmp_path, lambda p: plots.ours_vs_published(empty, p, ["demo"]))
