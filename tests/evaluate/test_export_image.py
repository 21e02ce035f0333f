"""The image-input export (``graphevent export``'s default for image runs) scores raw images as
``graphevent predict`` does, for every exportable model: the run's preprocessing (thresholds,
log1p, HCAL collapse, positions, node cap with equal pixel values at the cap) runs inside the
exported graph, and the consumer example in the docs needs neither torch nor graphevent."""

from __future__ import annotations

import csv
import importlib.util
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
from graphevent.evaluate.predictions import read_predictions
from graphevent.nn.export import exportable_models
from eval_toy import TINY_EXPORTABLE

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "onnx_image_consumer.py"
CAP = 16
TINY = TINY_EXPORTABLE  # two tasks below: a score and a value in GeV
TASKS = """
tasks:
  - {name: label, type: classification}
  - {name: m0, type: regression, target: m0}
train: {epochs: 1, batch_size: 16}
"""
ONNX_MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
ONNX = pytest.param("onnx", marks=[pytest.mark.slow, pytest.mark.skipif(
    bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")])


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
    from graphevent.train.run import TrainOptions, train

    root = tmp_path_factory.mktemp("image-export")
    raw = write_ml4sci_hdf5(root / "tied.h5", tied_images())
    cfg = tiny_data_config(8, max_nodes=CAP)
    preprocess([raw], cfg, root / "ds")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    try:
        for name in exportable_models():
            assert name in TINY, f"exportable model {name!r} has no tiny config in this test"
            (root / f"{name}.yaml").write_text(f"stage: supervised\nname: {name}\n{TINY[name]}\n{TASKS}")
            torch.manual_seed(0)
            train(TrainOptions(data=root / "ds", out=root / name, config=root / f"{name}.yaml", gpus=0, progress=False))
            out = root / f"{name}.parquet"
            assert main(["predict", str(root / name), "-i", str(raw), "-o", str(out), "--device", "cpu"]) == 0
            runs[name] = (root / name, read_predictions(out))
    finally:
        torch.set_num_threads(before)
    return raw, runs


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


def _exported(run_dir: Path, fmt: str, out: Path):
    """Export with the CLI's defaults; a function of the raw image batch (numpy) -> outputs."""
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"images": x})
    loaded = torch.jit.load(str(out))
    return lambda x: [t.detach().numpy() for t in loaded(torch.from_numpy(x))]


@pytest.mark.parametrize("fmt", ["torchscript", ONNX])
@pytest.mark.parametrize("name", exportable_models())
def test_image_export_equals_predict_on_the_raw_file(name, fmt, image_runs, tmp_path, one_torch_thread):
    raw, runs = image_runs
    run_dir, cols = runs[name]
    run = _exported(run_dir, fmt, tmp_path / f"{name}.{fmt}")
    with h5py.File(raw) as f:
        images = f["X_jets"][:]
    parts = [run(images[s:s + 16]) for s in (0, 16, 32)]  # batches of 16, 16 and 8 events, one file
    score, m0 = (np.concatenate([p[i] for p in parts]) for i in range(2))
    assert score.shape == (40, 2) and m0.shape == (40,)
    empty = np.isnan(cols["score_quark"])
    assert empty.tolist() == [i in (5, 6) for i in range(40)]  # events without nodes: NaN in both
    assert np.array_equal(np.isnan(score[:, 0]), empty) and np.array_equal(np.isnan(m0), empty)
    assert np.abs(score[~empty, 0] - cols["score_quark"][~empty]).max() <= 1e-5
    assert np.abs(score[~empty, 1] - cols["score_gluon"][~empty]).max() <= 1e-5
    np.testing.assert_allclose(m0[~empty], cols["pred_m0"][~empty], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
def test_onnx_file_says_what_it_takes_and_returns(image_runs, tmp_path):
    import onnx

    from graphevent import __version__
    from graphevent.utils.outfile import signature

    raw, runs = image_runs
    run_dir = runs["particlenet"][0]
    out = tmp_path / "pn.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["images"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims][1:] == [125, 125, 3]
    props = {p.key: p.value for p in proto.metadata_props}
    layout = json.loads(props["input_layout"])["images"]
    assert layout == {"shape": ["B", 125, 125, 3], "dtype": "float32", "layout": "channels_last",
                      "channels": ["tracks", "ecal", "hcal"], "rows": "eta", "columns": "phi",
                      "pixel_size": [0.0174, 0.0174], "file_key": "X_jets"}
    assert json.loads(props["classes"]) == ["quark", "gluon"]
    assert json.loads(props["outputs"]) == {
        "score_label": "(B, 2) softmax probabilities of classes quark, gluon (task label)",
        "pred_m0": "(B,) predicted m0 [GeV] (task m0)"}
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
    assert "--input 'pixels': expected one of image, nodes" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
def test_consumer_example_scores_like_predict_without_torch_or_graphevent(image_runs, tmp_path):
    raw, runs = image_runs
    run_dir, cols = runs["multitask"]
    model = tmp_path / "mt.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(model)]) == 0
    out = tmp_path / "scores.csv"
    # the example as a user runs it, then: which modules did it import?
    wrapper = (f"import runpy, sys; sys.argv = [{str(EXAMPLE)!r}, {str(model)!r}, {str(raw)!r}, '--batch', '16', "
               f"'--out', {str(out)!r}]; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'graphevent')))")
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"40 events scored -> {out}", "[]"]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "score_quark", "score_gluon", "pred_m0"]
    got = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    assert got["index"].tolist() == list(range(40))
    for k in ("score_quark", "score_gluon", "pred_m0"):
        np.testing.assert_allclose(got[k], cols[k], rtol=1e-5, atol=1e-5, equal_nan=True)


def test_point_runs_export_nodes_by_default_and_refuse_image(tmp_path):
    from graphevent.config.base import to_dict
    from graphevent.config.data import load_data_config
    from graphevent.errors import ConfigError
    from graphevent.evaluate.export import _image_config

    run = tmp_path / "pn-particles"
    run.mkdir()
    (run / "dataset.json").write_text(json.dumps({"data_config": to_dict(load_data_config("energyflow_qg"))}))
    assert _image_config(run, None) is None and _image_config(run, "nodes") is None
    with pytest.raises(ConfigError, match=r"^--input image: run pn-particles was trained on point inputs \(reader format "
                                          r"'particles'\); use --input nodes$"):
        _image_config(run, "image")
