"""`graphevent export`: the padded-input form of a model, as TorchScript and ONNX, against eager."""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphevent.cli.app import main
from graphevent.data.dataset import GraphDataset
from graphevent.errors import ConfigError
from graphevent.evaluate.export import example_inputs, export_run
from graphevent.nn.export import (
    exportable_encoders,
    exportable_models,
    pad_events,
    padded_module,
)
from graphevent.nn.registry import build_model, list_encoders, list_models
from graphevent.nn.tasks import TaskConfig

PN = """
stage: supervised
name: pn
model: {name: particlenet, k: 8, channels: [[16, 16], [24, 24]], fc_dim: 16}
tasks:
  - {name: label, type: classification}
  - {name: m0, type: regression, target: m0}
train: {epochs: 1, batch_size: 32}
"""

# the shipped multitask config (graphevent/configs/experiments/multitask_finetune.yaml) at a small
# size: its encoders, fusion, dropout 0.1 (off in eval) and its three tasks
MT_TASKS = [{"name": "label", "type": "classification"}, {"name": "m0", "type": "regression", "target": "m0"},
            {"name": "pt", "type": "regression", "target": "pt"}]


def mt_config(encoders: list[str], fusion: str = "cross_attention", pairwise: bool = False) -> dict:
    return {"name": "multitask", "encoders": encoders, "fusion": fusion, "dim": 16, "heads": 2, "queries_per_task": 2,
            "head_hidden": 16, "dropout": 0.1,
            "masked_gt": {"dim": 16, "depth": 2, "heads": 2, "edge_dim": 8, "k": 8, "global_every": 2, "pairwise": pairwise},
            "edgeconv": {"k": 6, "channels": [[16, 16], [16]], "dim": 16}}


#: a small model of every exportable kind
SMALL = {"particlenet": {"name": "particlenet", "k": 8}, "multitask": mt_config(["masked_gt", "edgeconv"]),
         "resnet15": {"name": "resnet15", "fmaps": [4, 8], "nblocks": 1}}

MT_AMP = """
stage: supervised
name: mt_amp
model:
  name: multitask
  encoders: [masked_gt, edgeconv]
  dim: 16
  heads: 2
  head_hidden: 16
  dropout: 0.1
  masked_gt: {dim: 16, depth: 1, heads: 2, edge_dim: 8, k: 4, global_every: 1}
  edgeconv: {k: 8, channels: [[16], [16]], dim: 16}
tasks:
  - {name: label, type: classification}
  - {name: m0, type: regression, target: m0}
  - {name: pt, type: regression, target: pt}
train: {epochs: 1, batch_size: 32, amp: bf16}
"""

ONNX_MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def pn_run(tmp_path_factory, tiny_dataset):
    from graphevent.train.run import TrainOptions, train

    root = tmp_path_factory.mktemp("pn")
    (root / "pn.yaml").write_text(PN)
    train(TrainOptions(data=tiny_dataset, out=root / "pn", config=root / "pn.yaml", gpus=0, progress=False))
    return root / "pn"


@pytest.fixture(scope="module")
def mt_amp_run(tmp_path_factory, tiny_dataset):
    """A multitask run (both encoders, three tasks) trained in bf16 autocast (``train.amp``)."""
    from graphevent.train.run import TrainOptions, train

    root = tmp_path_factory.mktemp("mt_amp")
    (root / "mt.yaml").write_text(MT_AMP)
    train(TrainOptions(data=tiny_dataset, out=root / "mt", config=root / "mt.yaml", gpus=0, progress=False))
    return root / "mt"


def _with_running_stats(model):
    """Non-trivial BatchNorm statistics, so an untrained model's eval mode is a real test."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", exportable_models())
def test_padded_form_equals_the_graph_model(name, tiny_dataset, one_torch_thread):
    ds = GraphDataset(tiny_dataset, "train")
    torch.manual_seed(0)
    model = _with_running_stats(build_model(SMALL[name], ds.info))
    events = [ds[i] for i in range(7)]  # with the dataset's graph: the padded form picks the same neighbours
    sizes = [e.num_nodes for e in events]
    assert len(set(sizes)) > 3 and min(sizes) < 8 < max(sizes)  # fewer and more nodes than k
    ref = model.predict(Batch.from_data_list(events))
    padded = padded_module(model)
    for extra in (0, 9):  # tight and with padding beyond the largest event
        f, p, m = pad_events(events, max(sizes) + extra)
        f[~m], p[~m] = float("nan"), 7.0  # values at padding are ignored
        out = padded(f, p, m)
        for got, (task, want) in zip(out, ref.items()):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=task)
    alone = padded(*pad_events(events[:1]))  # one event alone: as in the batch
    torch.testing.assert_close(alone[0], ref["label"][:1], atol=1e-5, rtol=1e-5)


PACKAGED = sorted(n for n, cls in list_models().items() if cls.__module__.startswith("graphevent.nn.models."))
NOT_EXPORTABLE = [n for n in PACKAGED if n not in exportable_models()]


def test_every_registered_model_exports_or_says_why_in_its_class():
    assert set(exportable_models()) <= set(PACKAGED)
    assert [n for n in NOT_EXPORTABLE if not list_models()[n].not_exportable] == []
    assert [n for n in exportable_models() if list_models()[n].not_exportable] == []


def test_every_registered_encoder_exports_or_says_why_in_its_class():
    without = [n for n, cls in list_encoders().items() if cls.not_exportable]
    assert without == ["sparse_conv"]
    assert sorted(exportable_encoders() + without) == sorted(list_encoders())


@pytest.mark.parametrize("name", NOT_EXPORTABLE)
def test_models_without_padded_form_say_why(name):
    assert name in list_models() and name not in exportable_models()
    model = type("M", (torch.nn.Module,), {"name": name, "not_exportable": list_models()[name].not_exportable})()
    with pytest.raises(ConfigError, match=rf"model '{name}' cannot be exported \(.+\); exportable models: multitask, particlenet, resnet15$"):
        padded_module(model)


def _lattice_events(tiny_dataset, sizes: list[int]) -> list:
    """Dataset events (real features) and random lattice events of ``sizes`` nodes (1 and 60
    included), without a stored graph: the eager model builds its (eta, phi) kNN, with the tie
    rule of preprocessing and of the padded form (tests/nn/test_knn_ties.py)."""
    from torch_geometric.data import Data

    ds = GraphDataset(tiny_dataset, "test")
    events = [Data(x=e.x, pos=e.pos, event_id=e.event_id) for e in (ds[i] for i in range(4))]
    f, p, m = example_inputs(3, sizes, seed=5)
    return events + [Data(x=f[i, :n], pos=p[i, :n], event_id=torch.tensor([1000 + i])) for i, n in enumerate(sizes)]


def _assert_outputs(got, want: dict, names: list[str]) -> None:
    assert len(got) == len(want) == len(names)
    for g, (task, w), name in zip(got, want.items(), names):
        assert name.endswith(task)
        torch.testing.assert_close(torch.as_tensor(g), w, atol=1e-5, rtol=1e-5, msg=task)


@pytest.mark.parametrize("encoders, fusion, pairwise", [(["masked_gt"], "concat", False), (["edgeconv"], "none", False),
                                                        (["masked_gt", "edgeconv"], "cross_attention", False),
                                                        (["masked_gt"], "cross_attention", True)])
def test_multitask_padded_and_torchscript_equal_the_graph_model(encoders, fusion, pairwise, tiny_dataset, one_torch_thread):
    """The padded form and its TorchScript equal the graph model (with ``pairwise``: its pair
    biases in the kNN and the event-wide attention too)."""
    torch.manual_seed(0)
    info = GraphDataset(tiny_dataset, "test").info
    model = _with_running_stats(build_model(mt_config(encoders, fusion, pairwise), info, [TaskConfig(**t) for t in MT_TASKS]))
    if pairwise:  # the pair biases are on, and not negligible
        enc = model.backbones["masked_gt"].encoder
        assert enc.pair_local is not None and enc.pair_global is not None
        for bias in (enc.pair_local, enc.pair_global):
            torch.nn.init.normal_(bias.mlp.net[-1].weight, std=1.0)
    events = _lattice_events(tiny_dataset, [1, 60, 5, 2, 9])  # 1 node, fewer than k, many
    sizes = sorted(int(e.num_nodes) for e in events)
    assert sizes[0] == 1 and sizes[-1] == 60 and sizes[2] < 6
    want = model.predict(Batch.from_data_list(events))
    model.train()  # dropout 0.1: the padded form is in eval mode whatever the model's mode
    padded = padded_module(model)
    assert not any(m.training for m in padded.modules())
    assert padded.output_names == ["score_label", "pred_m0", "pred_pt"]
    f, p, m = pad_events(events, 64)
    f[~m], p[~m] = float("nan"), 7.0  # values at padding are ignored
    _assert_outputs(padded(f, p, m), want, padded.output_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: deprecated, still the C++ loader's format
        scripted = torch.jit.script(padded)
    _assert_outputs(scripted(f, p, m), want, padded.output_names)
    # one event alone and a permuted batch: each event's outputs do not depend on the others
    _assert_outputs(scripted(*pad_events(events[4:5])), {t: v[4:5] for t, v in want.items()}, padded.output_names)
    order = torch.randperm(len(events), generator=torch.Generator().manual_seed(1))
    _assert_outputs(scripted(f[order], p[order], m[order]), {t: v[order] for t, v in want.items()}, padded.output_names)


def test_multitask_with_an_encoder_without_padded_form_says_which(tiny_dataset):
    cfg = {**mt_config(["masked_gt", "sparse_conv"]), "sparse_conv": {"channels": [8, 8], "blocks": 1, "dim": 16}}
    model = build_model(cfg, GraphDataset(tiny_dataset, "test").info)
    with pytest.raises(ConfigError, match=r"^model 'multitask' cannot be exported with encoder 'sparse_conv' \(its sparse "
                                          r"convolutions hash .+\); exportable encoders: edgeconv, masked_gt$"):
        padded_module(model)


def test_torchscript_export(pn_run, tiny_dataset, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "pn.pt"
    code = main(["export", str(pn_run), "--format", "torchscript", "--out", str(out), "--input", "nodes"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "input  features: (B, N, 3) float32: tracks, ecal, hcal" in text and "output score_label, pred_m0" in text
    files = {"graphevent.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["graphevent.json"])["outputs"] == ["score_label", "pred_m0"]
    # the scripted file against the eager graph model, on dataset events of different sizes
    from graphevent.nn.checkpoint import load_run

    model, _, _ = load_run(pn_run)
    ds = GraphDataset(tiny_dataset, "test")
    events = [ds[i] for i in range(6)]  # the dataset's graph: the exported module picks the same neighbours
    ref = model.predict(Batch.from_data_list(events))
    score, m0 = loaded(*pad_events(events, 70))
    torch.testing.assert_close(score, ref["label"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m0, ref["m0"], atol=1e-5, rtol=1e-5)
    assert not list(tmp_path.glob(".pn.pt.tmp*"))


def test_export_errors(pn_run, trained_runs, tmp_path, capsys):
    code = main(["export", str(trained_runs["ae"]), "--format", "torchscript", "--out", str(tmp_path / "ae.pt")])
    assert code == 2
    assert "model 'edgeconv_ae' cannot be exported (pretraining autoencoder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"--format 'tflite': expected one of torchscript, onnx"):
        export_run(pn_run, "tflite", tmp_path / "x")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
def test_onnx_export_dynamic_batch_and_nodes(pn_run, tmp_path, one_torch_thread, caplog):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "pn.onnx"
    with caplog.at_level(logging.WARNING):
        result = export_run(pn_run, "onnx", out, input="nodes")
    assert result.max_abs_diff <= 1e-5
    assert not [r.getMessage() for r in caplog.records if "torchvision" in r.getMessage()]  # torch's notices silenced
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["features", "positions", "mask"]
    assert json.loads({p.key: p.value for p in proto.metadata_props}["graphevent"])["classes"] == ["quark", "gluon"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    padded = padded_module(__import__("graphevent.nn.checkpoint", fromlist=["load_run"]).load_run(pn_run)[0])
    for seed, sizes in enumerate([[40, 3, 17], [5], [1], [8, 9], [1, 60, 2, 33]]):
        f, p, m = example_inputs(3, sizes, seed=seed + 10)
        got = session.run(None, {"features": f.numpy(), "positions": p.numpy(), "mask": m.numpy()})
        with torch.inference_mode():
            want = padded(f, p, m)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5, rtol=1e-5)


def test_multitask_trained_with_amp_exports_with_the_cli(mt_amp_run, tiny_dataset, tmp_path, capsys, one_torch_thread):
    from graphevent.nn.checkpoint import load_run

    model, cfg, _ = load_run(mt_amp_run)
    assert cfg.train.amp == "bf16" and all(p.dtype == torch.float32 for p in model.parameters())
    out = tmp_path / "mt.pt"
    code = main(["export", str(mt_amp_run), "--format", "torchscript", "--out", str(out), "--input", "nodes"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "output score_label, pred_m0, pred_pt" in text and "multitask exported (torchscript)" in text
    files = {"graphevent.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=files)
    meta = json.loads(files["graphevent.json"])
    assert meta["model"] == "multitask" and meta["k"] == 8
    events = _lattice_events(tiny_dataset, [1, 60, 3, 7])
    want = model.predict(Batch.from_data_list(events))  # full precision, as eval and the exported file
    _assert_outputs(loaded(*pad_events(events)), want, meta["outputs"])


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
def test_multitask_onnx_runtime_equals_the_graph_model(mt_amp_run, tiny_dataset, tmp_path, one_torch_thread):
    import onnxruntime as ort

    from graphevent.nn.checkpoint import load_run

    out = tmp_path / "mt.onnx"
    assert export_run(mt_amp_run, "onnx", out, input="nodes").max_abs_diff <= 1e-4
    model = load_run(mt_amp_run)[0]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for sizes in ([1, 60, 3, 7], [2], [9, 4]):  # different batch sizes and padded lengths, one file
        events = _lattice_events(tiny_dataset, sizes)
        f, p, m = pad_events(events, max(int(e.num_nodes) for e in events) + 3)
        got = session.run(None, {"features": f.numpy(), "positions": p.numpy(), "mask": m.numpy()})
        _assert_outputs(got, model.predict(Batch.from_data_list(events)), [o.name for o in session.get_outputs()])


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=[pytest.mark.slow, pytest.mark.skipif(
    bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")])])
def test_resnet15_rebuilds_its_image_inside_the_exported_graph(fmt, tiny_dataset, tmp_path, one_torch_thread):
    from graphevent.evaluate.export import EXPORTERS

    torch.manual_seed(0)
    model = build_model(SMALL["resnet15"], GraphDataset(tiny_dataset, "test").info, [TaskConfig(**t) for t in MT_TASKS[:2]])
    padded = padded_module(model)
    assert padded.output_names == ["score_label", "pred_m0"]
    events = _lattice_events(tiny_dataset, [1, 60, 5])  # 60 random lattice nodes: some share a pixel
    want = model.predict(Batch.from_data_list(events))
    f, p, m = pad_events(events, max(int(e.num_nodes) for e in events) + 2)
    f[~m] = float("nan")  # values at padding are ignored
    _assert_outputs(padded(f, p, m), want, padded.output_names)
    run = EXPORTERS[fmt](padded, example_inputs(3, [19, 10]), tmp_path / "rn", {})(tmp_path / "rn")
    _assert_outputs(run(f, p, m), want, padded.output_names)
    _assert_outputs(run(*pad_events(events[-1:])), {t: v[-1:] for t, v in want.items()}, padded.output_names)


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=[pytest.mark.slow, pytest.mark.skipif(
    bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")])])
def test_pairwise_masked_gt_exports(fmt, tiny_dataset, tmp_path, one_torch_thread):
    """A multitask model whose masked_gt encoder has pair biases exports, and its exported
    graph gives the graph model's outputs for other batch sizes and padded lengths."""
    from graphevent.evaluate.export import EXPORTERS

    torch.manual_seed(0)
    info = GraphDataset(tiny_dataset, "test").info
    model = build_model(mt_config(["masked_gt"], "concat", pairwise=True), info, [TaskConfig(**t) for t in MT_TASKS[:2]]).eval()
    padded = padded_module(model)
    run = EXPORTERS[fmt](padded, example_inputs(3, [19, 10]), tmp_path / "pw", {})(tmp_path / "pw")
    events = _lattice_events(tiny_dataset, [1, 40, 5])
    want = model.predict(Batch.from_data_list(events))
    f, p, m = pad_events(events, max(int(e.num_nodes) for e in events) + 2)
    _assert_outputs(run(f, p, m), want, padded.output_names)
    _assert_outputs(run(*pad_events(events[-1:])), {t: v[-1:] for t, v in want.items()}, padded.output_names)
