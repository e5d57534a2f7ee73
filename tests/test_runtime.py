"""Runtime table from mock Snakemake benchmark files."""

from mmknockout.analysis import runtime

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t1\n")


def test_runtime_table(tmp_path):
    b = tmp_path / "benchmarks"
    _bench(b / "prepare/demo.tsv", 2.5, 100.0)
    _bench(b / "graphs/demo.tsv", 1.0, "-")
    _bench(b / "text_features/demo_minilm.tsv", 30.0, 900.0)
    for cond, s in (("baseline", 10.0), ("dual-noise", 12.0), ("text-noise", 20.0)):
        _bench(b / f"train/demo/default/VBPR/{cond}/reg_weight~0.1/seed999.tsv", s, 300.0)
    _bench(b / "train/demo/default/BPR/baseline/reg_weight~0.1/seed999.tsv", 4.0, 200.0)
    (b / "train/demo/default/BPR/dual-noise").mkdir(parents=True)
    (b / "train/demo/default/BPR/dual-noise/broken.tsv").write_text("")  # a job still running: skipped
    table = runtime.runtime_table(runtime.collect(b))
    assert list(table.columns) == runtime.COLUMNS
    assert list(zip(table["rule"], table["model"], strict=True)) == [
        ("prepare_split", ""),
        ("aux_graphs", ""),
        ("text_features", ""),
        ("train", "all"),
        ("train", "BPR"),
        ("train", "VBPR"),
    ]
    vbpr = table[table["model"] == "VBPR"].iloc[0]
    assert (vbpr["jobs"], vbpr["median s"], vbpr["total s"], vbpr["peak max_rss MB"]) == (3, "12.00", "42.00", "300.00")
    assert table[table["rule"] == "aux_graphs"]["peak max_rss MB"].item() == ""
    assert table[table["model"] == "all"]["jobs"].item() == 4


def test_no_benchmarks(tmp_path):
    table = runtime.runtime_table(runtime.collect(tmp_path / "none"))
    assert table.empty and list(table.columns) == runtime.COLUMNS
