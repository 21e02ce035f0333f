"""Three classes end to end on simulated whole events: simulate, preprocess, train, eval, predict, export."""

from __future__ import annotations

import importlib.util
import json

import h5py
import numpy as np
import pytest

from graphevent.cli.app import main
from graphevent.data.dataset import GraphDataset
from graphevent.evaluate.predictions import read_predictions
from graphevent.metrics import roc
from graphevent.metrics.classification import pair_scores

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

CLASSES = ["diphoton", "hgg", "gamma_jet"]

PN = """
stage: supervised
name: pn
model: {name: particlenet, k: 8, channels: [[8, 8], [8, 8]], fc_dim: 8}
tasks:
  - {name: label, type: classification}
train: {epochs: 1, batch_size: 8, num_workers: 0}
"""

MT = """
stage: supervised
name: mt
model:
  name: multitask
  encoders: [masked_gt]
  dim: 16
  heads: 2
  queries_per_task: 1
  head_hidden: 16
  masked_gt: {dim: 16, depth: 1, heads: 2, edge_dim: 8, k: 8, decoder_dim: 8}
tasks:
  - {name: label, type: classification}
  - {name: m_gg, type: regression, target: m_gg}
  - {name: ht, type: regression, target: ht}
train: {epochs: 1, batch_size: 8, num_workers: 0}
"""


def run(args: list[str], capsys) -> str:
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return captured.out


@pytest.fixture(scope="module")
def whole_events(tmp_path_factory):
    """30 simulated whole events (10 per class) and their dataset with the shipped config."""
    from graphevent.simulate import generate_events

    root = tmp_path_factory.mktemp("many_classes")
    raw = root / "events.h5"
    generate_events(30, raw, seed=11, progress=False)
    assert main(["preprocess", str(raw), "--config", "whole_event_hdf5", "--out", str(root / "ds")]) == 0
    return root, raw, root / "ds"


@pytest.mark.slow
@pytest.mark.parametrize("name,text", [("pn", PN), ("mt", MT)])
def test_three_classes_train_eval_predict_export(whole_events, name, text, tmp_path, capsys, one_torch_thread):
    root, raw, ds = whole_events
    train = GraphDataset(ds, "train")
    assert train.info.classes == CLASSES and list(train.info.targets) == ["m_gg", "ht"]
    g = train[0]
    # absolute detector positions: eta within the barrel, phi within [-pi, pi)
    assert g.pos[:, 0].abs().max() < 1.479 and g.pos[:, 1].abs().max() < np.pi
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(text)
    run_dir = tmp_path / name
    run(["train", "-c", str(cfg), "-d", str(ds), "-o", str(run_dir), "--no-progress"], capsys)

    # eval on the training split (24 events, every class present)
    out = run(["eval", str(run_dir), "-d", str(ds), "--split", "train", "--bootstrap", "20", "--no-progress",
               "--out", str(tmp_path / "eval")], capsys)
    assert "macro AUC" in out and "1/εB(diphoton) @ 0.5" in out and "1/εB(gamma_jet) @ 0.3" in out
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    m = doc["runs"][name]["label"]
    info = doc["run_info"][name]["tasks"]["label"]
    assert info["kind"] == "multiclass" and info["signal"] == "hgg" and info["backgrounds"] == ["diphoton", "gamma_jet"]
    # every figure again from the predictions file, by hand
    cols = read_predictions(next((tmp_path / "eval").glob("predictions-*.parquet")))
    probs = np.stack([cols[f"score_{c}"] for c in CLASSES], axis=1)
    labels = cols["label"]
    assert probs.shape == (len(train), 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == labels), abs=1e-6)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (labels, probs.argmax(axis=1)), 1)
    assert m["confusion_matrix"] == confusion.tolist()
    aucs = [roc.binary_auc(probs[:, c], labels == c) for c in range(3)]
    for c, auc in zip(CLASSES, aucs):
        assert m[f"auc_{c}"] == pytest.approx(auc, abs=1e-6)
    assert m["auc_macro"] == pytest.approx(np.mean(aucs), abs=1e-6)
    for b, background in ((0, "diphoton"), (2, "gamma_jet")):
        pair = (labels == 1) | (labels == b)
        for eff in (0.3, 0.5):
            want = roc.rejection_at(pair_scores(probs[pair], 1, b), labels[pair] == 1, eff)
            got = m[f"rejection_{background}_at_{eff:g}"]
            assert (got == "inf" and want == np.inf) or got == pytest.approx(want, rel=1e-9)

    # predict on the raw file: every class score, and the truth of both targets
    pred = tmp_path / "pred.parquet"
    run(["predict", str(run_dir), "--input", str(raw), "--out", str(pred), "--no-progress", "--device", "cpu"], capsys)
    cols = read_predictions(pred)
    assert [c for c in cols if c.startswith("score_")] == [f"score_{c}" for c in CLASSES]
    assert {"true_m_gg", "true_ht"} <= set(cols)
    with h5py.File(raw) as f:
        np.testing.assert_array_equal(cols["label"], f["y"][:].astype(np.int64))
    if name == "mt":
        assert {"pred_m_gg", "pred_ht"} <= set(cols)

    # export: the exported model starts from the raw whole-event images (phi wraps inside it) and
    # gives predict's score of every class; TorchScript through the CLI
    import torch

    exported = tmp_path / f"{name}.pt"
    text = run(["export", str(run_dir), "--format", "torchscript", "--out", str(exported)], capsys)
    assert "output score_label" + (", pred_m_gg, pred_ht" if name == "mt" else "") in text
    with h5py.File(raw) as f:
        images = torch.from_numpy(f["X_jets"][:].astype(np.float32))
    with torch.inference_mode():
        scores = torch.jit.load(str(exported))(images)[0].numpy()
    assert scores.shape == (30, 3)
    np.testing.assert_allclose(scores, np.stack([cols[f"score_{c}"] for c in CLASSES], axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_three_class_onnx_from_raw_images_equals_predict(whole_events, tmp_path, capsys, one_torch_thread):
    """`graphevent export --format onnx` of a 3-class multitask run with two regression heads:
    ONNX Runtime on the raw whole-event images gives predict's outputs, every class score."""
    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")):
        pytest.skip("ONNX export needs the [export] extra")
    import onnxruntime as ort

    _, raw, ds = whole_events
    cfg = tmp_path / "mt.yaml"
    cfg.write_text(MT)
    run(["train", "-c", str(cfg), "-d", str(ds), "-o", str(tmp_path / "mt"), "--no-progress"], capsys)
    run(["export", str(tmp_path / "mt"), "--format", "onnx", "--out", str(tmp_path / "mt.onnx")], capsys)
    run(["predict", str(tmp_path / "mt"), "--input", str(raw), "--out", str(tmp_path / "p.parquet"), "--no-progress",
         "--device", "cpu"], capsys)
    cols = read_predictions(tmp_path / "p.parquet")
    session = ort.InferenceSession(str(tmp_path / "mt.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["score_label", "pred_m_gg", "pred_ht", "bad_input"]
    with h5py.File(raw) as f:
        images = f["X_jets"][:].astype(np.float32)
    scores, m_gg, ht, bad = session.run(None, {session.get_inputs()[0].name: images})
    assert scores.shape == (30, 3) and bad.tolist() == [0] * 30
    np.testing.assert_allclose(scores, np.stack([cols[f"score_{c}"] for c in CLASSES], axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m_gg, cols["pred_m_gg"], rtol=1e-5, atol=1e-4)  # GeV
    np.testing.assert_allclose(ht, cols["pred_ht"], rtol=1e-5, atol=1e-4)
