"""Inputs that must be refused with one line and exit 2, leaving every file as it was.

Shard paths confined to the dataset, shards bound to their dataset and split, manifest
schema, truncated shards, one input file under two names, a corrupt compressed chunk (one
and two workers), ``graph.k`` bounds and ``--set`` values named as overrides.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import pytest

from graphevent.cli.app import main
from graphevent.data.dataset import GraphDataset
from graphevent.data.testing import make_jet_images, make_tiny_dataset, write_ml4sci_hdf5
from graphevent.errors import DataError

DATA_CONFIG = """
name: integrity
reader: {format: ml4sci_hdf5, image_key: X_jets, label_key: y, target_keys: [m0, pt]}
classes: [quark, gluon]
channels:
  - {name: tracks, transform: log1p}
  - {name: ecal, transform: log1p}
  - {name: hcal, transform: log1p, upsample: 5}
graph: {k: 8}
chunk_size: 16
"""

EXPERIMENT = """
stage: supervised
model: {name: particlenet, k: 8, channels: [[8, 8]], fc_dim: 8}
tasks: [{name: label, type: classification}]
train: {epochs: 1, batch_size: 8}
"""


def files(*roots: Path) -> dict[str, str]:
    """sha256 of every regular file under (or at) ``roots``; symlinks by their target text;
    graphevent's lock files without their content (the pid of whoever locked last), as
    ``tests/tree_snapshot.py`` records them."""
    out = {}
    for root in roots:
        paths = [root] if root.is_file() or root.is_symlink() else sorted(root.rglob("*"))
        for p in paths:
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            elif p.name == ".graphevent.lock":
                out[str(p)] = "lock"
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_line_error(capsys, *args) -> str:
    """Run ``graphevent ARGS``; assert exit 2 and one error line, no traceback; return its message."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (a progress bar may precede it)
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0].removeprefix("error: ")


@pytest.fixture
def ds(tmp_path, tiny_dataset):
    """A private copy of the tiny dataset (96 events) to damage."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "ds"))


@pytest.fixture
def experiment(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT)
    return p


@pytest.fixture
def data_config(tmp_path):
    p = tmp_path / "data.yaml"
    p.write_text(DATA_CONFIG)
    return p


def edit_manifest(ds: Path, edit) -> None:
    m = json.loads((ds / "manifest.json").read_text())
    m = edit(m) or m
    (ds / "manifest.json").write_text(json.dumps(m))


def train_shard(ds: Path) -> tuple[int, dict]:
    m = json.loads((ds / "manifest.json").read_text())
    return next((i, s) for i, s in enumerate(m["shards"]) if s["split"] == "train")


# ----------------------------------------------------------------------------- shard paths
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_shard_paths_stay_inside_the_dataset(ds, tmp_path, capsys, kind):
    i, shard = train_shard(ds)
    outside = tmp_path / "outside.h5"
    shutil.copy(ds / shard["path"], outside)  # same bytes and checksum: only the place is wrong
    if kind == "absolute":
        value = str(outside)
        edit_manifest(ds, lambda m: m["shards"][i].update(path=value))
        expected = f"{ds / 'manifest.json'}: shards[{i}].path is {value!r}; expected a path relative to the dataset directory {ds}"
    elif kind == "dotdot":
        value = "../outside.h5"
        edit_manifest(ds, lambda m: m["shards"][i].update(path=value))
        expected = (f"{ds / 'manifest.json'}: shards[{i}].path is {value!r}: resolves to {outside}, outside the dataset "
                    f"directory {ds}; expected a path inside it")
    else:
        value = shard["path"]
        (ds / value).unlink()
        (ds / value).symlink_to(outside)
        expected = (f"{ds / 'manifest.json'}: shards[{i}].path is {value!r}: resolves to {outside}, outside the dataset "
                    f"directory {ds}; expected a path inside it")
    before = files(ds, outside)
    assert one_line_error(capsys, "inspect", ds) == expected
    with pytest.raises(DataError, match=re.escape(expected)):
        GraphDataset(ds, "train")
    assert files(ds, outside) == before


def test_shard_of_another_dataset_with_its_checksum_is_refused(ds, tmp_path, capsys, experiment):
    other = make_tiny_dataset(tmp_path / "other", n_events=40, seed=7)
    i, shard = train_shard(ds)
    j, foreign = train_shard(other)
    shutil.copy(other / foreign["path"], ds / shard["path"])
    edit_manifest(ds, lambda m: m["shards"][i].update(sha256=foreign["sha256"]))  # checksum matches the file
    ours = json.loads((ds / "manifest.json").read_text())["dataset_id"]
    theirs = json.loads((other / "manifest.json").read_text())["dataset_id"]
    assert ours != theirs
    expected = (f"{ds / shard['path']}: shard attribute 'dataset_id' is {theirs!r}; expected {ours!r} "
                "(a shard of another dataset or split); rerun preprocess")
    before = files(ds)
    assert one_line_error(capsys, "train", "-c", experiment, "-d", ds, "-o", tmp_path / "run") == expected
    assert files(ds) == before and not (tmp_path / "run").exists()


def test_shard_listed_under_another_split_is_refused(ds):
    m = json.loads((ds / "manifest.json").read_text())
    val = next(s for s in m["shards"] if s["split"] == "val")
    i, test = next((i, s) for i, s in enumerate(m["shards"]) if s["split"] == "test")
    shutil.copy(ds / val["path"], ds / test["path"])  # a validation shard posing as a test shard
    edit_manifest(ds, lambda m: m["shards"][i].update(sha256=val["sha256"], events=val["events"]))
    with pytest.raises(DataError, match=re.escape(f"{ds / test['path']}: shard attribute 'split' is 'val'; expected 'test'")):
        GraphDataset(ds, "test")


# ----------------------------------------------------------------------------- manifest schema
@pytest.mark.parametrize("edit, message", [
    (lambda m: [m], "expected a JSON object (as `graphevent preprocess` writes), found a list"),
    (lambda m: {k: v for k, v in m.items() if k != "shards"},
     "missing key 'shards'; not a complete manifest written by `graphevent preprocess`"),
    (lambda m: {**m, "shards": [{k: v for k, v in m["shards"][0].items() if k != "sha256"}]},
     "missing key 'shards[0].sha256'; not a complete manifest written by `graphevent preprocess`"),
    (lambda m: {**m, "classes": "quark"}, "classes is 'quark'; expected a list"),
    (lambda m: {k: v for k, v in m.items() if k != "node_mode"},
     "missing key 'node_mode'; not a complete manifest written by `graphevent preprocess`"),
    (lambda m: {**m, "shards": [{**m["shards"][0], "path": "a\x00b"}]}, "shards[0].path is 'a\\x00b'; expected a path "
     "relative to the dataset directory {ds}"),
])
def test_manifest_schema_is_checked(ds, capsys, edit, message):
    edit_manifest(ds, edit)
    before = files(ds)
    assert one_line_error(capsys, "inspect", ds) == f"{ds / 'manifest.json'}: {message.format(ds=ds)}"
    assert files(ds) == before


def test_truncated_shard_with_matching_checksum(ds, tmp_path, capsys, experiment):
    i, shard = train_shard(ds)
    path = ds / shard["path"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    edit_manifest(ds, lambda m: m["shards"][i].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    before = files(ds)
    line = one_line_error(capsys, "train", "-c", experiment, "-d", ds, "-o", tmp_path / "run")
    assert re.fullmatch(re.escape(f"{path}: cannot read shard (") + r".+" + re.escape(
        "); the file is truncated or corrupt: rerun preprocess"), line), line
    assert files(ds) == before and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "copy"])
def test_one_input_under_two_names_is_refused(tmp_path, tiny_raw, data_config, capsys, kind):
    raw = Path(shutil.copy(tiny_raw, tmp_path / "qg.h5"))
    other = tmp_path / "inputs" / f"{kind}.h5"
    other.parent.mkdir()
    if kind == "symlink":
        other.symlink_to(raw)
        expected = f"{raw} and {other} are the same file (both are {os.path.realpath(raw)}); give each input once"
    elif kind == "hardlink":
        os.link(raw, other)
        expected = f"{raw} and {other} are the same file (hard links to one file); give each input once"
    else:
        shutil.copy(raw, other)
        digest = hashlib.sha256(raw.read_bytes()).hexdigest()
        expected = (f"{raw} and {other} have identical contents (sha256 {digest[:16]}...); give each input once "
                    "(a copy would put the same events in two splits)")
    before = files(raw, other)
    out = tmp_path / "ds"
    assert one_line_error(capsys, "preprocess", raw, other, "-c", data_config, "-o", out) == expected
    assert files(raw, other) == before and not out.exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_compressed_chunk(tmp_path, data_config, capsys, workers):
    raw = write_ml4sci_hdf5(tmp_path / "x.h5", make_jet_images(40, seed=3))  # one gzip chunk per event
    with h5py.File(raw, "r") as f:
        info = f["X_jets"].id.get_chunk_info_by_coord((21, 0, 0, 0))
    data = bytearray(raw.read_bytes())
    middle = info.byte_offset + info.size // 2
    data[middle : middle + 16] = bytes(range(16))
    raw.write_bytes(bytes(data))
    before = files(raw)
    out = tmp_path / "ds"
    line = one_line_error(capsys, "preprocess", raw, "-c", data_config, "-o", out, "--workers", workers)
    # the chunk of events 16..31 (chunk_size 16) holds the damaged event 21
    assert re.fullmatch(r"x\.h5: cannot read as HDF5: events 16\.\.31: corrupt compressed chunk at event 21 "
                        r"\(Error -?\d+ [^()]+\)", line), line
    assert files(raw) == before and not out.exists()


# ----------------------------------------------------------------------------- config values
def test_graph_k_is_bounded_before_anything_is_allocated(tmp_path, tiny_raw, data_config, capsys):
    out = tmp_path / "ds"
    line = one_line_error(capsys, "preprocess", tiny_raw, "-c", data_config, "-o", out, "--set", "graph.k=1000000000")
    assert line == "--set graph.k=1000000000: invalid value 1000000000; expected an integer in 1..1024"
    big = tmp_path / "big.yaml"
    big.write_text(DATA_CONFIG.replace("graph: {k: 8}", "graph: {k: 1000000000}"))
    line = one_line_error(capsys, "preprocess", tiny_raw, "-c", big, "-o", out)
    assert line == f"{big}.graph.k: invalid value 1000000000; expected an integer in 1..1024"
    assert not out.exists()


@pytest.mark.parametrize("override, message", [
    ("graph.k=abc", "--set graph.k=abc: expected an integer, found 'abc'"),
    ("graph.node_mode=pixels", "--set graph.node_mode=pixels: invalid value 'pixels'; expected one of 'union', 'per_channel'"),
    ("chunk_size=0", "--set chunk_size=0: invalid value 0; expected >= 1"),
])
def test_bad_set_value_names_the_override(tmp_path, tiny_raw, data_config, capsys, override, message):
    out = tmp_path / "ds"
    assert one_line_error(capsys, "preprocess", tiny_raw, "-c", data_config, "-o", out, "--set", override) == message
    assert not out.exists()


def test_worker_errors_cross_the_process_boundary(monkeypatch):
    # what a pool worker raises is pickled to the parent: an exception that does not pickle
    # (isal's IsalError did not) must not turn into a PicklingError
    import pickle

    import graphevent.data.preprocess as pp

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("cannot pickle")

    def fails_with(exc):
        def process_chunk(*args):
            raise exc
        return process_chunk

    task = pp.ChunkTask(0, 1, "/data/x.h5", 16, 32, 0)
    monkeypatch.setattr(pp, "process_chunk", fails_with(Unpicklable("inflate failed")))
    with pytest.raises(RuntimeError, match=r"^x\.h5 events 16\.\.31: Traceback") as info:
        pp._process_chunk_in_worker(task, None, "out", "id")
    assert "Unpicklable: inflate failed" in pickle.loads(pickle.dumps(info.value)).args[0]
    monkeypatch.setattr(pp, "process_chunk", fails_with(DataError("x.h5: event 20 has NaN/Inf values")))
    with pytest.raises(DataError) as info:
        pp._process_chunk_in_worker(task, None, "out", "id")
    assert pickle.loads(pickle.dumps(info.value)).args == ("x.h5: event 20 has NaN/Inf values",)
