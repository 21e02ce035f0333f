"""The points-input export (``graphevent export``'s default for runs on point inputs) scores a
reader's points as ``graphevent predict`` does, for every exportable model: thresholds, a
signed channel, the node cap with equal sums at the cap, events with fewer points than the
cap and an empty event, inside the exported graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from graphevent.cli.app import main
from graphevent.config.base import from_dict
from graphevent.config.data import DataConfig
from graphevent.io import open_reader
from graphevent.nn.export import exportable_models
from eval_toy import NEEDS_ONNX, ONNX, TINY_EXPORTABLE, check_equals_predict, check_nan_is_flagged, exported, exported_onnx, train_exportable

CAP = 16
N_EVENTS = 40
#: a model that rebuilds an image needs its geometry on a point dataset
GEOMETRY = {"resnet15": "pixel_size: [0.05, 0.05], image_size: [16, 16]"}


def particles_config() -> DataConfig:
    """energyflow-layout particles: pt (log1p, above 1 GeV) and charge (signed, |q| > 0.5)."""
    return from_dict(DataConfig, {
        "name": "tiny_particles",
        "reader": {"format": "particles", "particles_key": "X", "label_key": "y", "target_keys": ["m0"]},
        "classes": ["quark", "gluon"],
        "channels": [{"name": "pt", "threshold": 1.0, "transform": "log1p"},
                     {"name": "charge", "threshold": 0.5, "signed": True}],
        "graph": {"k": 8, "max_nodes": CAP},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0},
        "chunk_size": 16,
    }, "tiny_particles")


def tied_jets(path: Path) -> Path:
    """40 jets of 0 to 30 particles (jet 7 has none, jets 0 to 4 fewer than the cap) with pt on
    a few levels (0.5 and 1 GeV: at or below threshold, kept only when charged), so that
    pt + charge ties at the node cap; rapidity and phi continuous (no equidistant neighbours)."""
    rng = np.random.default_rng(5)
    x = np.zeros((N_EVENTS, 30, 4))
    sizes = rng.integers(CAP + 1, 31, N_EVENTS)
    sizes[:5] = [1, 2, 5, 9, 15]
    sizes[7] = 0
    for i, n in enumerate(sizes):
        x[i, :n, 0] = rng.choice([0.5, 1.0, 2.0, 3.0, 4.0, 6.0], n)
        x[i, :n, 1] = rng.normal(0.0, 0.2, n)
        x[i, :n, 2] = 1.0 + rng.normal(0.0, 0.2, n)
        x[i, :n, 3] = rng.choice([211, -211, 22, 130, 2212, 11], n)
    y = np.arange(N_EVENTS) % 2
    np.savez(path, X=x, y=y.astype(np.float64), m0=(20.0 + 10.0 * y + rng.random(N_EVENTS)))
    return path


def reader_points(path: Path, start: int = 0, stop: int = N_EVENTS) -> tuple[np.ndarray, np.ndarray]:
    """Events ``[start, stop)`` as the run's reader yields them, padded with NaN (ignored):
    ``points (B, P, C + 2)`` (pt, charge, eta, phi) and ``n_points (B,)``."""
    with open_reader(path, particles_config()) as reader:
        chunk = reader.read(start, stop)
    rows = np.column_stack([chunk.values, chunk.eta, chunk.phi]).astype(np.float32)
    off = np.concatenate([[0], np.cumsum(chunk.counts)])
    points = np.full((len(chunk.counts), int(chunk.counts.max()) + 2, rows.shape[1]), np.nan, np.float32)
    for b in range(len(chunk.counts)):
        points[b, :chunk.counts[b]] = rows[off[b]:off[b + 1]]
    return points, chunk.counts.astype(np.int64)


@pytest.fixture(scope="module")
def point_runs(tmp_path_factory):
    """``(raw file, {model: (run directory, predict's columns on the raw file)})``: a particles
    dataset with a node cap of 16, every exportable model trained on it, ``graphevent predict`` run."""
    from graphevent.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("points-export")
    raw = tied_jets(root / "QG_tied.npz")
    preprocess([raw], particles_config(), root / "ds")
    missing = set(exportable_models()) - set(TINY_EXPORTABLE)
    assert not missing, f"exportable models {sorted(missing)} have no tiny config in this test"
    models = {name: TINY_EXPORTABLE[name][:-1] + f", {GEOMETRY[name]}}}" if name in GEOMETRY else TINY_EXPORTABLE[name]
              for name in exportable_models()}
    return raw, train_exportable(root, root / "ds", raw, models)


def test_the_file_holds_ties_at_the_cap_small_and_empty_events(point_runs):
    """The parity below means something: the cap keeps some of several equal pt + charge sums
    in many jets; some jets have fewer nodes than the cap, one none, and thresholds drop points."""
    raw, _ = point_runs
    points, n = reader_points(raw)
    cut_ties = dropped = 0
    for b in range(N_EVENTS):
        v = points[b, :n[b], :2]
        above = np.column_stack([v[:, 0] > 1.0, np.abs(v[:, 1]) > 0.5])
        score = np.sort((v * above)[above.any(1)].sum(1))[::-1]
        cut_ties += len(score) > CAP and score[CAP - 1] == score[CAP]
        dropped += len(score) < n[b]
    assert cut_ties >= 15 and dropped >= 30
    assert n[:5].tolist() == [1, 2, 5, 9, 15] and n[7] == 0


@pytest.mark.parametrize("fmt", ["torchscript", ONNX])
@pytest.mark.parametrize("name", exportable_models())
def test_points_export_equals_predict_on_the_raw_file(name, fmt, point_runs, tmp_path, one_torch_thread):
    raw, runs = point_runs
    run_dir, cols = runs[name]
    run = exported(run_dir, fmt, tmp_path / f"{name}.{fmt}", ["points", "n_points"])
    parts = [run(*reader_points(raw, s, min(s + 16, N_EVENTS))) for s in (0, 16, 32)]  # batches of 16, 16 and 8
    check_equals_predict([np.concatenate([p[i] for p in parts]) for i in range(3)], cols, empty=[7])
    check_nan_is_flagged(run, reader_points(raw, 0, 16), (3, 2, 0))  # a NaN pt: flagged, scored as 0


@pytest.mark.slow
@NEEDS_ONNX
def test_points_onnx_file_says_what_it_takes_and_returns(point_runs, tmp_path):
    proto, props = exported_onnx(point_runs[1]["particlenet"][0], tmp_path / "pn.onnx")
    assert [i.name for i in proto.graph.input] == ["points", "n_points"]
    assert [o.name for o in proto.graph.output] == ["score_label", "pred_m0", "bad_input"]
    assert props["input"] == "points"
    assert json.loads(props["input_layout"]) == {
        "points": {"shape": ["B", "P", 4], "dtype": "float32", "columns": ["pt", "charge", "eta", "phi"],
                   "reader": "particles", "padding": "rows from n_points[b] on are ignored"},
        "n_points": {"shape": ["B"], "dtype": "int64"}}
    outputs = json.loads(props["outputs"])
    assert list(outputs) == ["score_label", "pred_m0", "bad_input"]
    assert outputs["bad_input"].startswith("(B,) int64: 1 where the event's raw input held a non-finite (NaN/Inf) value: "
                                           "predict would refuse this event's file under bad_values: fail")
    pre = json.loads(props["preprocessing"])
    assert pre["graph"]["max_nodes"] == CAP and [c["threshold"] for c in pre["channels"]] == [1.0, 0.5]
    assert pre["reader"] == "particles" and pre["periods"] is None and pre["empty_events"] == "skip: NaN outputs"


def test_points_input_errors(point_runs, tmp_path, capsys):
    run_dir = point_runs[1]["particlenet"][0]
    out = tmp_path / "x.pt"
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out), "--input", "image"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--input image: run particlenet was trained on point inputs (reader format 'particles'); "
        "use --input points (its default) or --input nodes")
    assert not list(tmp_path.iterdir())
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out), "--input", "nodes"]) == 0
    files = {"graphevent.json": ""}
    torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["graphevent.json"])["outputs"] == ["score_label", "pred_m0"]  # the node form: unchanged
