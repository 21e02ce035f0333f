import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from graphevent.data.dataset import GraphDataset
from graphevent.data.preprocess import preprocess
from graphevent.data.testing import make_jet_images, tiny_data_config, write_ml4sci_hdf5
from graphevent.errors import DataError, OutputError


def _shard_sums(root: Path) -> dict[str, str]:
    m = json.loads((root / "manifest.json").read_text())
    return {s["path"]: s["sha256"] for s in m["shards"]}


def test_manifest_fields(tiny_dataset):
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    for key in ("n_events", "splits", "classes", "inputs", "shards", "config", "graphevent_version", "skipped"):
        assert key in m
    assert m["n_events"] == 96 == sum(m["splits"].values())
    assert sum(s["events"] for s in m["shards"]) == 96
    assert m["inputs"][0]["events_read"] == 96 and len(m["inputs"][0]["sha256"]) == 64
    assert m["classes"] == ["quark", "gluon"]
    # class counts add up to what the generator made: alternating labels -> 48 of each
    assert sum(m["class_counts"][s]["gluon"] for s in m["splits"]) == 48


def test_dataset_items_follow_graph_contract(tiny_dataset):
    ds = GraphDataset(tiny_dataset, "train")
    d = ds[3]
    n = d.num_nodes
    assert d.x.shape == (n, 3) and d.pos.shape == (n, 2)
    assert d.edge_index.shape[0] == 2 and d.edge_attr.shape == (d.edge_index.shape[1], 3)
    assert d.edge_index.shape[1] == n * min(8, n - 1)
    j, i = d.edge_index
    assert (j != i).all()
    delta = d.pos[j] - d.pos[i]
    torch.testing.assert_close(d.edge_attr[:, :2], delta)
    torch.testing.assert_close(d.edge_attr[:, 2], delta.norm(dim=1))
    assert d.y.shape == (1,) and d.targets.shape == (1, 2)
    assert len(ds.num_nodes_per_event) == len(ds) and ds.num_nodes_per_event[3] == n


def test_workers_do_not_change_dataset(tmp_path, tiny_raw):
    cfg = tiny_data_config()
    a = preprocess([tiny_raw], cfg, tmp_path / "a", workers=1)
    b = preprocess([tiny_raw], cfg, tmp_path / "b", workers=2)
    assert _shard_sums(tmp_path / "a") == _shard_sums(tmp_path / "b")
    assert a["splits"] == b["splits"]


def test_split_depends_only_on_event_id(tmp_path, tiny_raw):
    # a different chunk size changes sharding but no event changes split
    a = preprocess([tiny_raw], tiny_data_config(), tmp_path / "a")
    cfg = tiny_data_config()
    import dataclasses

    b = preprocess([tiny_raw], dataclasses.replace(cfg, chunk_size=7), tmp_path / "b")
    ids = lambda root, split: sorted(GraphDataset(root, split).event_ids.tolist())
    for split in ("train", "val", "test"):
        assert ids(tmp_path / "a", split) == ids(tmp_path / "b", split)
    assert a["splits"] == b["splits"]


KILL_SCRIPT = """
import os, signal, sys
import graphevent.data.preprocess as pp
from graphevent.data.testing import tiny_data_config
orig, done = pp.process_chunk, []
def killing(task, *args):
    if len(done) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(task)
    return orig(task, *args)
pp.process_chunk = killing
pp.preprocess([sys.argv[1]], tiny_data_config(), sys.argv[2], workers=1)
"""


def test_resume_after_sigkill_matches_clean_run(tmp_path, tiny_raw):
    clean = tmp_path / "clean"
    preprocess([tiny_raw], tiny_data_config(), clean)
    out = tmp_path / "killed"
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tiny_raw), str(out)], capture_output=True)
    assert r.returncode == -9
    assert not (out / "manifest.json").exists()  # does not look complete
    assert len(list((out / "chunks").glob("*.json"))) == 1
    with pytest.raises(DataError, match="not a complete graphevent dataset"):
        GraphDataset(out)
    preprocess([tiny_raw], tiny_data_config(), out)  # the same command again
    assert _shard_sums(out) == _shard_sums(clean)
    assert not (out / "chunks").exists() and not (out / ".preprocess-state.json").exists()


def _interrupted(out, raw, monkeypatch):
    """A dataset whose preprocess was interrupted (Ctrl-C) after its first chunk: resumable, kept."""
    import graphevent.data.preprocess as pp

    orig, done = pp.process_chunk, []

    def interrupting(task, *args):
        if done:
            raise KeyboardInterrupt
        done.append(task)
        return orig(task, *args)

    monkeypatch.setattr(pp, "process_chunk", interrupting)
    with pytest.raises(KeyboardInterrupt):
        preprocess([raw], tiny_data_config(), out)
    monkeypatch.setattr(pp, "process_chunk", orig)
    assert (out / ".preprocess-state.json").is_file() and not (out / "manifest.json").exists()


def test_resume_refuses_other_config(tmp_path, tiny_raw, monkeypatch):
    import dataclasses

    out = tmp_path / "ds"
    _interrupted(out, tiny_raw, monkeypatch)
    with pytest.raises(DataError, match="unfinished dataset made with other inputs or config"):
        preprocess([tiny_raw], dataclasses.replace(tiny_data_config(), chunk_size=7), out)
    preprocess([tiny_raw], tiny_data_config(), out)  # the same command resumes it
    assert (out / "manifest.json").is_file()


def test_existing_output_needs_overwrite(tmp_path, tiny_raw):
    out = tmp_path / "ds"
    preprocess([tiny_raw], tiny_data_config(), out)
    with pytest.raises(DataError, match="already exists there; pass --overwrite"):
        preprocess([tiny_raw], tiny_data_config(), out)
    m = preprocess([tiny_raw], tiny_data_config(), out, overwrite=True)
    assert m["n_events"] == 64


def test_foreign_directory_is_never_touched(tmp_path, tiny_raw):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match=r"mine: holds thesis.tex but no .graphevent.json marker of graphevent output"):
        preprocess([tiny_raw], tiny_data_config(), out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "precious"


def _raw_with(tmp_path, mutate, name="x.h5"):
    arr = make_jet_images(40, seed=3)
    mutate(arr)
    return write_ml4sci_hdf5(tmp_path / name, arr)


def test_empty_events_skipped_and_counted(tmp_path):
    def empty(a):
        a["X_jets"][[3, 7, 8]] = 0.0

    raw = _raw_with(tmp_path, empty)
    m = preprocess([raw], tiny_data_config(), tmp_path / "ds")
    assert m["skipped"]["empty"] == 3 and m["n_events"] == 37
    ids = np.concatenate([GraphDataset(tmp_path / "ds", s).event_ids for s in ("train", "val", "test")])
    assert not {3, 7, 8} & set(ids.tolist())


def test_nan_policy(tmp_path):
    def nan(a):
        a["X_jets"][5, 60, 60, 1] = np.nan
        a["X_jets"][9, 1, 1, 0] = np.inf

    raw = _raw_with(tmp_path, nan)
    with pytest.raises(DataError, match=r"x.h5: event 5 has NaN/Inf values; expected finite values"):
        preprocess([raw], tiny_data_config(), tmp_path / "fail")
    assert not (tmp_path / "fail").exists()  # nothing half-written left behind
    import dataclasses

    m = preprocess([raw], dataclasses.replace(tiny_data_config(), bad_values="zero"), tmp_path / "zero")
    assert m["repaired"]["nan_events_zeroed"] == 2 and m["n_events"] == 40


def test_limit_reads_first_events(tmp_path, tiny_raw):
    m = preprocess([tiny_raw], tiny_data_config(), tmp_path / "ds", limit=10)
    assert m["n_events"] == 10 and m["inputs"][0]["events_read"] == 10


def test_tampered_shard_is_detected(tmp_path, tiny_raw):
    out = tmp_path / "ds"
    preprocess([tiny_raw], tiny_data_config(), out)
    shard = next((out / "shards" / "train").glob("*.h5"))
    with h5py.File(shard, "r+") as f:
        f["x"][0, 0] += 1.0
    with pytest.raises(DataError, match="checksum does not match manifest.json"):
        GraphDataset(out, "train")
    GraphDataset(out, "val")  # other splits still open


def test_stats_match_data(tiny_dataset):
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    ds = GraphDataset(tiny_dataset, "train")
    x = torch.cat([ds[i].x for i in range(len(ds))]).double()
    t = torch.cat([ds[i].targets for i in range(len(ds))]).double()
    for j, name in enumerate(m["node_features"]):
        assert m["feature_stats"][name]["mean"] == pytest.approx(x[:, j].mean().item(), rel=1e-6)
        assert m["feature_stats"][name]["std"] == pytest.approx(x[:, j].std(unbiased=False).item(), rel=1e-5)
    assert m["target_stats"]["pt"]["mean"] == pytest.approx(t[:, 1].mean().item(), rel=1e-6)


def test_in_memory_dataset_equals_lazy(tiny_dataset):
    lazy = GraphDataset(tiny_dataset, "train")
    mem = GraphDataset(tiny_dataset, "train", in_memory=True)
    assert len(mem) == len(lazy)
    for i in (0, 7, len(lazy) - 1):
        a, b = lazy[i], mem[i]
        for key in ("x", "pos", "edge_index", "edge_attr", "y", "targets", "event_id"):
            assert torch.equal(a[key], b[key]), key


def test_image_slabs_do_not_change_dataset(tmp_path, tiny_raw, monkeypatch):
    # images are read and turned into points reader.read_slab events at a time inside a chunk
    from graphevent.io.hdf5 import HDF5ImageReader

    cfg = tiny_data_config()
    monkeypatch.setattr(HDF5ImageReader, "read_slab", 5)
    a = preprocess([tiny_raw], cfg, tmp_path / "a")
    monkeypatch.setattr(HDF5ImageReader, "read_slab", 10_000)
    b = preprocess([tiny_raw], cfg, tmp_path / "b")
    assert _shard_sums(tmp_path / "a") == _shard_sums(tmp_path / "b")
    assert a["nodes_per_event"] == b["nodes_per_event"] and a["splits"] == b["splits"]


def test_reader_is_reopened_when_the_file_is_rewritten_in_the_same_process(tmp_path):
    """Readers are cached per process; a rewritten input (same path) must not be read from a stale reader."""
    raw = tmp_path / "raw.h5"
    write_ml4sci_hdf5(raw, make_jet_images(12, seed=1))
    first = preprocess([raw], tiny_data_config(), tmp_path / "a")
    write_ml4sci_hdf5(tmp_path / "new.h5", make_jet_images(20, seed=2))
    os.replace(tmp_path / "new.h5", raw)  # regenerated under the same name
    second = preprocess([raw], tiny_data_config(), tmp_path / "b")
    assert (first["n_events"], second["n_events"]) == (12, 20)
