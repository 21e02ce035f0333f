"""The image-input export (``graphevent export``'s default for image runs) scores raw images as
``graphevent predict`` does, for every exportable model: the run's preprocessing (thresholds,
log1p, HCAL collapse, positions, node cap with equal pixel values at the cap) runs inside the
exported graph, and the consumer example in the docs needs neither torch nor graphevent."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from graphevent.cli.app import main
from graphevent.data.testing import make_jet_images, tiny_data_config, write_ml4sci_hdf5
from graphevent.nn.export import exportable_models
from eval_toy import NEEDS_ONNX, ONNX, TINY_EXPORTABLE, check_equals_predict, check_nan_is_flagged, exported, exported_onnx, train_exportable

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "onnx_image_consumer.py"
CAP = 16


def tied_images(n: int = 40) -> dict[str, np.ndarray]:
    """Synthetic jets whose pixel values are multiples of 4 GeV (HCAL: of 0.16 GeV per pixel,
    4 GeV per 5x5 tower), so that many nodes have equal values at the node cap; two empty events."""
    arrays = make_jet_images(n, seed=3)
    x = arrays["X_jets"]
    x[..., :2] = np.ceil(x[..., :2] / 4.0) * 4.0
    x[..., 2] = np.ceil(x[..., 2] / 0.16) * 0.16
    x[[5, 6]] = 0.0
    return arrays


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    """``(raw file, {model: (run directory, predict's columns on the raw file)})``: a dataset
    with a node cap of 16, every exportable model trained on it, ``graphevent predict`` run."""
    from graphevent.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("image-export")
    raw = write_ml4sci_hdf5(root / "tied.h5", tied_images())
    cfg = tiny_data_config(8, max_nodes=CAP)
    preprocess([raw], cfg, root / "ds")
    missing = set(exportable_models()) - set(TINY_EXPORTABLE)
    assert not missing, f"exportable models {sorted(missing)} have no tiny config in this test"
    return raw, train_exportable(root, root / "ds", raw, {name: TINY_EXPORTABLE[name] for name in exportable_models()})


def test_the_node_cap_cuts_through_equal_values(image_runs):
    """The parity below means something: in many events the cap keeps some of several nodes of
    equal value and drops the others (preprocessing keeps the first in node order)."""
    from graphevent.data.transforms.image_to_points import ImageToPoints

    raw, _ = image_runs
    with h5py.File(raw) as f:
        images = f["X_jets"][:]
    itp = ImageToPoints.from_config(tiny_data_config(8))  # no cap: every node and its value
    pc = itp(images.transpose(0, 3, 1, 2))
    off = pc.offsets
    cut_ties = 0
    for e in range(len(images)):
        score = np.sort(pc.values[off[e]:off[e + 1]].sum(1))[::-1]
        cut_ties += len(score) > CAP and score[CAP - 1] == score[CAP]
    assert cut_ties >= 12  # of 40


@pytest.mark.parametrize("fmt", ["torchscript", ONNX])
@pytest.mark.parametrize("name", exportable_models())
def test_image_export_equals_predict_on_the_raw_file(name, fmt, image_runs, tmp_path, one_torch_thread):
    raw, runs = image_runs
    run_dir, cols = runs[name]
    run = exported(run_dir, fmt, tmp_path / f"{name}.{fmt}", ["images"])
    with h5py.File(raw) as f:
        images = f["X_jets"][:]
    parts = [run(images[s:s + 16]) for s in (0, 16, 32)]  # batches of 16, 16 and 8 events, one file
    check_equals_predict([np.concatenate([p[i] for p in parts]) for i in range(3)], cols, empty=[5, 6])
    check_nan_is_flagged(run, (images[:16],), (9, 60, 61, 1))  # a NaN ECAL pixel: flagged, scored as 0


@pytest.mark.slow
@NEEDS_ONNX
def test_onnx_file_says_what_it_takes_and_returns(image_runs, tmp_path):
    import onnx

    from graphevent import __version__
    from graphevent.utils.outfile import signature

    run_dir = image_runs[1]["particlenet"][0]
    out = tmp_path / "pn.onnx"
    proto, props = exported_onnx(run_dir, out)
    assert [i.name for i in proto.graph.input] == ["images"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims][1:] == [125, 125, 3]
    layout = json.loads(props["input_layout"])["images"]
    assert layout == {"shape": ["B", 125, 125, 3], "dtype": "float32", "layout": "channels_last",
                      "channels": ["tracks", "ecal", "hcal"], "rows": "eta", "columns": "phi",
                      "pixel_size": [0.0174, 0.0174], "file_key": "X_jets"}
    assert json.loads(props["classes"]) == ["quark", "gluon"]
    assert json.loads(props["outputs"]) == {
        "score_label": "(B, 2) softmax probabilities of classes quark, gluon (task label)",
        "pred_m0": "(B,) predicted m0 [GeV] (task m0)",
        "bad_input": "(B,) int64: 1 where the event's raw input held a non-finite (NaN/Inf) value: predict would refuse "
                     "this event's file under bad_values: fail; the scores treat those values as 0"}
    assert [o.name for o in proto.graph.output] == ["score_label", "pred_m0", "bad_input"]
    assert props["graphevent_version"] == __version__ and props["input"] == "image"
    assert props["dataset_id"] == json.loads((run_dir / "dataset.json").read_text())["identity"]["dataset_id"]
    pre = json.loads(props["preprocessing"])
    assert pre["graph"]["max_nodes"] == CAP and [c["upsample"] for c in pre["channels"]] == [1, 1, 5]
    assert [c["transform"] for c in pre["channels"]] == ["log1p"] * 3 and pre["empty_events"] == "skip: NaN outputs"
    assert signature(out) == "export"  # --overwrite recognises it
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out), "--overwrite", "--input", "nodes"]) == 0
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["features", "positions", "mask"]


def test_torchscript_file_carries_the_metadata(image_runs, tmp_path):
    run_dir = image_runs[1]["resnet15"][0]
    out = tmp_path / "rn.pt"
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 0
    files = {"graphevent.json": ""}
    torch.jit.load(str(out), _extra_files=files)
    meta = json.loads(files["graphevent.json"])
    assert meta["input"] == "image" and meta["layout"]["images"]["shape"] == ["B", 125, 125, 3]
    assert meta["classes"] == ["quark", "gluon"] and meta["preprocessing"]["graph"]["max_nodes"] == CAP


def test_input_errors(image_runs, tmp_path, capsys):
    run_dir = image_runs[1]["particlenet"][0]
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx"), "--input", "pixels"]) == 2
    assert "--input 'pixels': expected one of image, points, nodes" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx"), "--input", "points"]) == 2
    assert capsys.readouterr().err.strip().endswith("--input points: run particlenet was trained on images (reader format "
                                                    "'ml4sci_hdf5'); use --input image (its default) or --input nodes")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@NEEDS_ONNX
def test_consumer_example_scores_like_predict_without_torch_or_graphevent(image_runs, tmp_path):
    raw, runs = image_runs
    run_dir, cols = runs["multitask"]
    model = tmp_path / "mt.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(model)]) == 0
    out = tmp_path / "scores.csv"
    with h5py.File(raw) as f, h5py.File(tmp_path / "nan.h5", "w") as g:  # the file with a NaN pixel in event 12
        images = f["X_jets"][:]
        images[12, 40, 70, 0] = np.nan
        g["X_jets"] = images
    # the example as a user runs it, then: which modules did it import?
    wrapper = (f"import runpy, sys; sys.argv = [{str(EXAMPLE)!r}, {str(model)!r}, {str(tmp_path / 'nan.h5')!r}, '--batch', '16', "
               f"'--out', {str(out)!r}]; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'graphevent')))")
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"39 events scored -> {out}", "[]"]
    assert done.stderr.strip() == ("1 of 40 events left out, NaN/Inf pixels (bad_input; graphevent predict refuses "
                                   "such a file under bad_values: fail): index 12")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "score_quark", "score_gluon", "pred_m0"]
    got = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    kept = [i for i in range(40) if i != 12]
    assert got["index"].tolist() == kept
    for k in ("score_quark", "score_gluon", "pred_m0"):
        np.testing.assert_allclose(got[k], cols[k][kept], rtol=1e-5, atol=1e-5, equal_nan=True)
    # the images as a .npy array: numpy and onnxruntime alone, not even h5py
    np.save(tmp_path / "clean.npy", np.delete(images, 12, axis=0))
    wrapper = wrapper.replace(str(tmp_path / "nan.h5"), str(tmp_path / "clean.npy")).replace("('torch', 'graphevent')", "('torch', 'graphevent', 'h5py')")
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [f"39 events scored -> {out}", "[]"]
    with open(out) as f:
        again = list(csv.DictReader(f))
    assert [r["index"] for r in again] == [str(i) for i in range(39)] and [r["pred_m0"] for r in again] == [r["pred_m0"] for r in rows]


def test_point_runs_export_points_by_default_and_refuse_image(tmp_path):
    from graphevent.config.base import to_dict
    from graphevent.config.data import load_data_config
    from graphevent.errors import ConfigError
    from graphevent.evaluate.export import _raw_config

    run = tmp_path / "pn-particles"
    run.mkdir()
    (run / "dataset.json").write_text(json.dumps({"data_config": to_dict(load_data_config("energyflow_qg"))}))
    assert _raw_config(run, None)[0] == "points" and _raw_config(run, "points")[0] == "points"
    assert _raw_config(run, "nodes") is None
    with pytest.raises(ConfigError, match=r"^--input image: run pn-particles was trained on point inputs \(reader format "
                                          r"'particles'\); use --input points \(its default\) or --input nodes$"):
        _raw_config(run, "image")
