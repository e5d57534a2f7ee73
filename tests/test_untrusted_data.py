"""Hostile and careless data files: refused with an InputError naming the file, never executed.

Every hostile file is written by the test into its tmp_path; nothing is written anywhere else.
"""

import builtins
import errno
import gzip
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib import format as npy_format
from test_mmrec import _mmrec_folder

import mmknockout.io as mmio
from mmknockout import arrays
from mmknockout.arrays import (
    load_feature_matrix,
    load_npy,
    load_pickled_npy,
    npy_header,
)
from mmknockout.data import download
from mmknockout.data.amazon import (
    read_image_features,
    read_metadata,
    read_ratings,
    write_image_features,
)
from mmknockout.data.dataset import NeighbourGraph, SplitData
from mmknockout.data.download import (
    DownloadError,
    fetch,
    fetch_dataset,
    fetch_file,
    load_registry,
)
from mmknockout.data.images import download_images
from mmknockout.data.mmrec import import_mmrec, read_inter, user_graph_from_dict
from mmknockout.data.preprocess import read_mapping
from mmknockout.errors import InputError
from mmknockout.io import (
    DiskFullError,
    remove_stale_temporaries,
    require_file,
    write_json,
    write_npy,
    write_text,
)

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (instead of hanging the suite) if a check ever blocks on a FIFO."""
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked reading a non-regular file"))
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --- 1. pickled user graph dicts never run code -------------------------------------------------------------


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _save_object(path: Path, value) -> None:
    arr = np.empty((), dtype=object)
    arr[()] = value
    np.save(path, arr, allow_pickle=True)


def _payloads(marker: Path):
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(builtins.exec, touch),
        "builtins.eval": _Payload(builtins.eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call"])
def test_malicious_user_graph_dict_is_refused_without_running(tmp_path, kind):
    marker = tmp_path / "pwned"
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    evil = src / "user_graph_dict.npy"
    _save_object(evil, {0: [[1], [1]], 1: _payloads(marker)[kind]})
    assert not marker.exists()
    with pytest.raises(InputError, match=r"user_graph_dict\.npy: refused to load .*data file may only hold") as exc:
        import_mmrec(src, "toy", tmp_path / "out")
    assert str(evil) in str(exc.value)
    assert not marker.exists()
    assert not (tmp_path / "out" / "toy.inter").exists()


def test_pickle_not_inside_an_object_array_is_refused(tmp_path):
    p = tmp_path / "user_graph_dict.npy"
    np.save(p, np.arange(3))
    with pytest.raises(InputError, match=r"user_graph_dict\.npy: expected a pickled user graph dict"):
        user_graph_from_dict(p, 4)
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(InputError, match=r"user_graph_dict\.npy: not a valid \.npy file"):
        user_graph_from_dict(p, 4)


def test_genuine_user_graph_dict_loads_identically(tmp_path):
    p = tmp_path / "user_graph_dict.npy"
    graph = {
        0: [np.array([1, 2]), np.array([3.0, 1.0])],
        np.int64(1): [[0], [np.int64(3)]],
        3: [[], []],
        2: ([0, 1, 3], (1.5, 2, 7)),
    }
    np.save(p, graph, allow_pickle=True)
    got = user_graph_from_dict(p, 4)
    expected = np.load(p, allow_pickle=True).item()  # the file is the test's own, so trusted here
    assert {int(u) for u in expected} == {0, 1, 2, 3}
    assert got.ids.tolist() == [[1, 2, -1], [0, -1, -1], [0, 1, 3], [-1, -1, -1]]
    assert got.weights.tolist() == [[3, 1, 0], [3, 0, 0], [1.5, 2, 7], [0, 0, 0]]
    assert got.ids.dtype == np.int64 and got.weights.dtype == np.float32
    assert load_pickled_npy(p).item().keys() == expected.keys()


def test_import_with_genuine_graph_is_unchanged(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    import_mmrec(src, "toy", tmp_path / "out")
    g = NeighbourGraph.load(tmp_path / "out" / "user_graph.npz")
    assert g.ids[0].tolist() == [1, 2] and g.weights[0].tolist() == [3, 1]


# --- 2. stage layering --------------------------------------------------------------------------------------


def test_data_stage_does_not_import_features():
    code = (
        "import sys; import mmknockout.data.mmrec, mmknockout.data.download, mmknockout.data.preprocess; "
        "bad = [m for m in sys.modules if m.startswith(('mmknockout.features', 'mmknockout.models', "
        "'mmknockout.train', 'mmknockout.run'))]; assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    from mmknockout import features

    assert features.load_feature_matrix is arrays.load_feature_matrix
    assert features.check_finite is arrays.check_finite


# --- 3. feature and array files -----------------------------------------------------------------------------


def _forged_npy(path: Path, shape, dtype="<f4", data=b"\0" * 64) -> Path:
    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
        fh.write(data)
    return path


def test_absurd_npy_shape_is_refused_before_allocating(tmp_path, monkeypatch):
    p = _forged_npy(tmp_path / "text_feat.npy", (10**12, 4))
    monkeypatch.setattr(arrays.np, "load", lambda *a, **k: pytest.fail("np.load reached for a forged header"))
    with pytest.raises(
        InputError,
        match=r"text_feat\.npy: the \.npy header claims shape \(1000000000000, 4\) of "
        r"float32 \(16,000,000,000,000 bytes of data\) but the file size is 192 bytes \(64 after",
    ):
        load_feature_matrix(p, 10**12, "text")
    with pytest.raises(InputError, match="claims shape"):
        npy_header(p)


def test_forged_shape_in_mmrec_folder(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    _forged_npy(src / "image_feat.npy", (5, 10**11), dtype="<f8")
    with pytest.raises(InputError, match=r"image_feat\.npy: the \.npy header claims shape \(5, 100000000000\)"):
        import_mmrec(src, "toy", tmp_path / "out")


def test_truncated_npy_and_not_npy(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.ones((10, 3), np.float32))
    p.write_bytes(p.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"x\.npy: the \.npy header claims shape \(10, 3\)"):
        load_npy(p)
    p.write_bytes(b"PK\x03\x04 this is a zip, not a .npy")
    with pytest.raises(InputError, match=r"x\.npy: not a valid \.npy file"):
        load_feature_matrix(p, 10)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_fifo_feature_file_is_refused_immediately(tmp_path):
    p = _fifo(tmp_path / "text_feat.npy")
    with pytest.raises(InputError, match=r"text features path is not a regular file: .*text_feat\.npy is a FIFO"):
        load_feature_matrix(p, 3, "text")


@pytest.mark.parametrize("name", ["toy.inter", "text_feat.npy", "user_graph_dict.npy", "i_id_mapping.csv"])
def test_fifo_in_mmrec_folder_is_refused(tmp_path, name):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    (src / name).unlink(missing_ok=True)
    _fifo(src / name)
    with pytest.raises(InputError, match=rf"{name.replace('.', '[.]')} is a FIFO"):
        import_mmrec(src, "toy", tmp_path / "out")


def test_symlink_loop_is_reported_not_absent(tmp_path):
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    (src / "image_feat.npy").unlink()
    (src / "image_feat.npy").symlink_to(src / "loop_b")
    (src / "loop_b").symlink_to(src / "image_feat.npy")
    with pytest.raises(InputError, match=r"cannot read .*image_feat\.npy: symlink loop"):
        import_mmrec(src, "toy", tmp_path / "out")
    (src / "toy.inter").unlink()
    (src / "toy.inter").symlink_to(src / "toy.inter")
    with pytest.raises(InputError, match=r"cannot read .*toy\.inter: symlink loop"):
        read_inter(src / "toy.inter")


def test_dangling_symlink_is_reported(tmp_path):
    p = tmp_path / "text_feat.npy"
    p.symlink_to(tmp_path / "gone.npy")
    with pytest.raises(InputError, match=r"text_feat\.npy is a symlink to a missing target"):
        load_feature_matrix(p, 3, "text")


def _deny_open(monkeypatch, target: Path):
    real = builtins.open

    def fake(file, *args, **kwargs):
        if Path(os.fspath(file)) == target:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake)


def _ratings(tmp_path: Path) -> Path:
    p = tmp_path / "ratings_X.csv"
    p.write_text("u1,i1,5,100\nu2,i1,4,200\n")
    return p


def _inter(tmp_path: Path) -> Path:
    src = tmp_path / "mmrec"
    _mmrec_folder(src)
    return src / "toy.inter"


@pytest.mark.parametrize(
    "make, reader", [(_inter, read_inter), (_inter, SplitData.from_inter), (_ratings, read_ratings)]
)
def test_unreadable_file_mocked_open(tmp_path, monkeypatch, make, reader):
    p = make(tmp_path)
    _deny_open(monkeypatch, p)
    with pytest.raises(InputError, match=rf"cannot read {p}: permission denied"):
        reader(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
@pytest.mark.parametrize("make, reader", [(_inter, read_inter), (_ratings, read_ratings)])
def test_unreadable_file_chmod(tmp_path, make, reader):
    p = make(tmp_path)
    p.chmod(0)
    try:
        with pytest.raises(InputError, match=rf"cannot read {p}: permission denied"):
            reader(p)
    finally:
        p.chmod(0o644)


def test_require_file_kinds(tmp_path):
    with pytest.raises(InputError, match=r"data path is not a regular file: .* is a directory"):
        require_file(tmp_path, "data")
    with pytest.raises(InputError, match=r"data file not found: .*nope"):
        require_file(tmp_path / "nope", "data")
    with pytest.raises(InputError, match="is a character device"):
        require_file("/dev/null", "data")


# --- 4. empty split parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("label, name", [(1, "validation"), (2, "test"), (0, "train")])
def test_empty_split_part_is_refused_at_import(tmp_path, label, name):
    src = tmp_path / "mmrec"
    df = _mmrec_folder(src)
    df = df[df.x_label != label]
    df.to_csv(src / "toy.inter", sep="\t", index=False)
    with pytest.raises(InputError, match=rf"toy\.inter: the {name} split \(x_label {label}\) is empty"):
        import_mmrec(src, "toy", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_inter_file(tmp_path):
    p = tmp_path / "toy.inter"
    p.write_text("")
    with pytest.raises(InputError, match=r"toy\.inter: cannot parse"):
        read_inter(p)


# --- 5. downloads and the registry --------------------------------------------------------------------------

REGISTRY = """\
datasets:
  demo:
    category: Demo
    files:
      ratings:
        file: {file}
        url: {url}
        sha256: {sha}
"""


def _registry(
    tmp_path: Path, file="ratings_Demo.csv", url="http://example.invalid/ratings_Demo.csv", sha="null"
) -> Path:
    p = tmp_path / "datasets.yaml"
    p.write_text(REGISTRY.format(file=file, url=url, sha=sha))
    return p


@pytest.mark.parametrize(
    "url",
    [
        "data:text/plain,hello",
        "ftp://example.invalid/r.csv",
        "javascript:alert(1)",
        "gopher://example.invalid/",
        "/etc/passwd",
    ],
)
def test_url_schemes_refused(tmp_path, url, monkeypatch):
    monkeypatch.setattr(download._OPENER, "open", lambda *a, **k: pytest.fail("opened a refused URL"))
    with pytest.raises(
        InputError,
        match=r"datasets\.demo\.files\.ratings\.url: must be a URL with scheme "
        r"http, https, file",
    ):
        load_registry(_registry(tmp_path, url=f'"{url}"'))
    with pytest.raises(InputError, match="is not allowed; must be a URL with scheme http, https, file"):
        fetch(url, tmp_path / "out.csv", retries=1)
    with pytest.raises(InputError, match=r"registry entry 'r\.csv': url: .* is not allowed"):
        fetch_file({"file": "r.csv", "url": url}, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("name", ["../escape.csv", "sub/r.csv", ".hidden.csv", "..", "a\\\\b.csv", "x..csv"])
def test_unsafe_stored_file_names_refused(tmp_path, name):
    with pytest.raises(InputError, match=r"datasets\.demo\.files\.ratings\.file: must be a plain file name"):
        load_registry(_registry(tmp_path, file=f'"{name}"'))
    reg = {
        "datasets": {
            "demo": {"files": {"ratings": {"file": name.replace("\\\\", "\\"), "url": "http://example.invalid/x"}}}
        }
    }
    with pytest.raises(InputError, match="must be a plain file name"):
        fetch_dataset("demo", tmp_path / "raw", registry=reg, roles=("ratings",))
    assert not (tmp_path / "escape.csv").exists() and not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    "sha, shown", [("12345", "12345"), ('"abc"', "'abc'"), ("[1, 2]", r"\[1, 2\]"), ('"' + "g" * 64 + '"', "'g")]
)
def test_bad_sha256_names_the_field(tmp_path, sha, shown):
    with pytest.raises(
        InputError,
        match=rf"datasets\.demo\.files\.ratings\.sha256: must be null or a string of "
        rf"64 hex digits \(found {shown}",
    ):
        load_registry(_registry(tmp_path, sha=sha))


def test_sha256_int_in_direct_calls(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("x")
    with pytest.raises(InputError, match=r"registry entry 'r\.csv': sha256: 12345 must be null or a string"):
        fetch_file({"file": "r.csv", "source": "local", "path": str(src), "sha256": 12345}, tmp_path / "o.csv")
    with pytest.raises(InputError, match="sha256 for .*: 12345 must be null"):
        fetch(src.as_uri(), tmp_path / "o.csv", sha256=12345)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    "entry, rule",
    [
        ("file: a.csv\n        sha256: null", "exactly one of url: or source: local"),
        (
            "file: a.csv\n        url: http://x.invalid/a\n        source: local\n        path: a.csv",
            "exactly one of url: or source: local",
        ),
        ("file: a.csv\n        url: http://x.invalid/a\n        sha265: null", "unknown key in a file entry"),
        ("url: http://x.invalid/a", "'file' is a required property"),
        ("file: a.csv\n        source: local\n        path: a.csv\n        link: yes please", "must be true or false"),
    ],
)
def test_registry_structure_errors_name_the_entry(tmp_path, entry, rule):
    p = tmp_path / "datasets.yaml"
    p.write_text(f"datasets:\n  demo:\n    files:\n      ratings:\n        {entry}\n")
    with pytest.raises(InputError, match=rf"datasets\.yaml: datasets\.demo\.files\.ratings.*{rule}"):
        load_registry(p)


def test_registry_not_yaml_or_not_a_file(tmp_path):
    p = tmp_path / "datasets.yaml"
    p.write_text("datasets: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_registry(p)
    with pytest.raises(InputError, match="is a FIFO"):
        load_registry(_fifo(tmp_path / "fifo.yaml"))


def test_valid_registry_and_local_paths_still_work(tmp_path):
    src = tmp_path / "mirror" / "ratings_Demo.csv"
    src.parent.mkdir()
    src.write_text("u,i,5,1\n")
    p = tmp_path / "datasets.yaml"
    p.write_text(
        "datasets:\n  demo:\n    files:\n      ratings:\n        file: ratings_Demo.csv\n"
        "        source: local\n        path: mirror/ratings_Demo.csv\n        sha256: null\n"
    )
    got = fetch_dataset("demo", tmp_path / "raw", registry=p, roles=("ratings",), base_dir=tmp_path)
    assert got["ratings"] == tmp_path / "raw" / "ratings_Demo.csv"
    assert got["ratings"].read_text() == "u,i,5,1\n"


def test_redirect_to_other_scheme_is_refused():
    handler = download._HttpOnlyRedirect()
    req = urllib.request.Request("http://example.invalid/a")
    with pytest.raises(DownloadError, match="refused redirect from http://example.invalid/a to 'ftp://x/y'"):
        handler.redirect_request(req, None, 302, "Found", {}, "ftp://x/y")


def test_image_download_refuses_unsafe_asins_and_schemes(tmp_path):
    img = tmp_path / "src.png"
    img.write_bytes(b"\x89PNG fake")
    meta = pd.DataFrame(
        {
            "asin": ["A1", "../../evil", "A3", "A4\tx"],
            "imUrl": [img.as_uri(), img.as_uri(), "data:image/png;base64,AAAA", img.as_uri()],
        }
    )
    items = pd.DataFrame({"asin": meta.asin, "itemID": range(4)})
    out = download_images(meta, items, tmp_path / "img", tmp_path / "failed.tsv", threads=1)
    assert out["path"].notna().tolist() == [True, False, False, False]
    failed = (tmp_path / "failed.tsv").read_text().splitlines()
    assert [f.split("\t")[0] for f in failed] == ["1", "2", "3"] and all(len(f.split("\t")) == 3 for f in failed)
    assert "is not a plain file name" in failed[0] and "URL scheme 'data'" in failed[1]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["A1.png", "failed.tsv", "src.png"]
    out = download_images(
        meta.iloc[:1], items.iloc[:1], tmp_path / "img2", tmp_path / "f2.tsv", schemes=("http", "https")
    )
    assert out["path"].isna().all()


# --- 6. writes: full disk and stale temporaries -------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "target, write",
    [
        ("np.save", lambda p: write_npy(p, np.ones(3))),
        ("Path.write_text", lambda p: write_text(p, "x")),
        ("Path.write_text", lambda p: write_json(p, {"a": 1})),
        ("os.fsync", lambda p: write_text(p, "x")),
    ],
)
def test_disk_full_leaves_nothing(tmp_path, monkeypatch, target, write):
    owner, attr = {
        "np.save": (mmio.np, "save"),
        "Path.write_text": (Path, "write_text"),
        "os.fsync": (mmio.os, "fsync"),
    }[target]
    monkeypatch.setattr(owner, attr, _enospc)
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DiskFullError, match=rf"disk full while writing {dest}") as exc:
        write(dest)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, OSError)
    assert exc.value.errno == errno.ENOSPC
    assert list((tmp_path / "out").iterdir()) == []


def test_other_write_errors_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error") as exc:
        write_text(tmp_path / "a.txt", "x")
    assert not isinstance(exc.value, DiskFullError) and list(tmp_path.iterdir()) == []


def _temporary(folder: Path, name: str, suffix: str = "", age: float = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{suffix}", dir=folder)  # as atomic_path names them
    os.close(fd)
    if age:
        os.utime(tmp, (time.time() - age, time.time() - age))
    return Path(tmp)


def test_remove_stale_temporaries(tmp_path):
    root = tmp_path / "results"
    old = [
        _temporary(root, "metrics.json", age=3600),
        _temporary(root / "a" / "b", "per_user.npz", ".npz", 120),
        _temporary(root / "a", "ratings.csv", ".part", 61),
    ]
    fresh = _temporary(root, "history.csv", age=5)
    keep = [
        root / ".metrics.json.tmp",
        root / "a" / "run.tmp",
        root / "metrics.json",
        root / ".hidden.abcdefgh.tmpx",
        root / "a" / ".x.ABCDEFGH.tmp",
    ]
    for p in keep:
        p.write_text("keep")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    link_target = tmp_path / "outside"
    link_target.mkdir()
    outside = _temporary(link_target, "z.json", age=3600)
    (root / "linked").symlink_to(link_target)  # symlinked folders are not followed
    removed = remove_stale_temporaries(root, grace=60)
    assert removed == sorted(old)
    assert not any(p.exists() for p in old)
    assert fresh.exists() and outside.exists() and all(p.exists() for p in keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_atomic_write_then_cleanup_keeps_results(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    assert remove_stale_temporaries(tmp_path, grace=0) == []
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'


# --- 7. provenance ------------------------------------------------------------------------------------------


def test_environment_records_source_hash_and_null_commit_outside_git(tmp_path, monkeypatch):
    from mmknockout import run

    env = run.environment("cpu")
    assert env["mmknockout"] and len(env["source_sha256"]) == 64 and int(env["source_sha256"], 16) >= 0
    copy = tmp_path / "mmknockout"
    shutil.copytree(run.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert run.source_sha256(copy) == env["source_sha256"]
    (copy / "io.py").write_text((copy / "io.py").read_text() + "\n# edited\n")
    assert run.source_sha256.__wrapped__(copy) != env["source_sha256"]  # uncached: the copy changed
    monkeypatch.setattr(run, "PACKAGE_ROOT", copy)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert run.git_commit() is None


# --- 8. raw Amazon files ------------------------------------------------------------------------------------


def _metadata(tmp_path: Path) -> Path:
    p = tmp_path / "meta_X.json.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("{'asin': 'A1', 'title': 't'}\n")
    return p


def _image_b(tmp_path: Path) -> Path:
    p = tmp_path / "image_features_X.b"
    write_image_features(p, ["A1"], np.ones((1, 4), np.float32))
    return p


def _mapping(tmp_path: Path) -> Path:
    p = tmp_path / "i_id_mapping.csv"
    p.write_text("asin\titemID\nA1\t0\n")
    return p


AMAZON_READERS = {
    "ratings": (_ratings, read_ratings),
    "metadata": (_metadata, read_metadata),
    "image feature": (_image_b, lambda p: read_image_features(p, {"A1": 0}, 1, dim=4)),
    "item id mapping": (_mapping, lambda p: read_mapping(p, "item")),
}


@pytest.mark.parametrize("what", list(AMAZON_READERS))
def test_raw_files_fifo_unreadable_and_loops(tmp_path, monkeypatch, what):
    make, reader = AMAZON_READERS[what]
    reader(make(tmp_path))  # the genuine file reads
    fifo = _fifo(tmp_path / "fifo")
    with pytest.raises(InputError, match=rf"{what} path is not a regular file: {fifo} is a FIFO"):
        reader(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match=rf"cannot read {loop}: symlink loop"):
        reader(loop)
    (tmp_path / "sub").mkdir()
    p = make(tmp_path / "sub")
    _deny_open(monkeypatch, p)
    with pytest.raises(InputError, match=rf"cannot read {p}: permission denied"):
        reader(p)


def test_disk_full_during_download_is_not_retried(tmp_path, monkeypatch):
    src = tmp_path / "r.csv"
    src.write_text("u,i,5,1\n")
    monkeypatch.setattr(download.time, "sleep", lambda s: pytest.fail("retried after a full disk"))
    monkeypatch.setattr(mmio.os, "fsync", _enospc)
    with pytest.raises(DiskFullError, match="disk full while writing"):
        fetch(src.as_uri(), tmp_path / "raw" / "r.csv", retries=3)
    assert list((tmp_path / "raw").iterdir()) == []
