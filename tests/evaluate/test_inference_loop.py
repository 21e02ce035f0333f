"""The one inference loop (graphevent.evaluate.inference.infer) and its one default batch size."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

import graphevent.cli
import graphevent.evaluate
from graphevent.errors import ConfigError
from graphevent.evaluate.inference import batches, infer
from graphevent.evaluate.options import DEFAULT_BATCH_SIZE
from graphevent.evaluate.predict import predict
from graphevent.evaluate.probes import pooled_embeddings

from eval_toy import ToyEvalModel, toy_events

SIZES = (1, 7, 128)
CHANNELS = [{"name": n, "transform": "none", "scale": 1.0, "signed": False} for n in "abc"]


def _outputs(model, events, batch_size):
    """Every output of every batch, concatenated in event order."""
    parts = [out for _, out in infer(model, events, batch_size=batch_size)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("batch_size", SIZES)
def test_loop_gives_one_model_call_per_batch_bit_for_bit(batch_size):
    model, events = ToyEvalModel(), toy_events(40)
    got = [(b.event_id.view(-1).tolist(), out) for b, out in infer(model, events, batch_size=batch_size)]
    assert len(got) == -(-40 // batch_size)
    for i, (ids, out) in enumerate(got):
        chunk = events[i * batch_size:(i + 1) * batch_size]
        assert ids == [int(e.event_id) for e in chunk]
        ref = model.eval().predict(Batch.from_data_list(chunk))
        assert out.keys() == ref.keys()
        for k in ref:
            assert torch.equal(out[k], ref[k]), k


def test_batch_sizes_1_7_128_give_the_same_outputs_embeddings_and_columns():
    """Equal to float32 rounding (a matrix product of B rows may round differently from one
    of 1 row); what the model does not compute (ids, labels, observables) is bit-identical."""
    model, events = ToyEvalModel(), toy_events(40)
    model.info = SimpleNamespace(classes=["quark", "gluon"], node_features=["a", "b", "c"])
    outs = [_outputs(model, events, n) for n in SIZES]
    cols = [predict(model, events, n) for n in SIZES]
    embs = [pooled_embeddings(model, events, np.arange(3, 40), CHANNELS, n) for n in SIZES]
    assert outs[0]["label"].shape == (40, 2) and embs[0].z.shape == (37, 8)
    assert list(cols[0]) == ["score_quark", "score_gluon", "pred_m0", "recon_error_a", "recon_error_b", "recon_error_c"]
    np.testing.assert_array_equal(embs[0].event_id, [7 * i + 3 for i in range(3, 40)])
    for o, c, e in zip(outs[1:], cols[1:], embs[1:]):
        for k in outs[0]:
            torch.testing.assert_close(o[k], outs[0][k], rtol=1e-6, atol=1e-6, msg=k)
        assert list(c) == list(cols[0])
        for k in c:
            np.testing.assert_allclose(c[k], cols[0][k], rtol=1e-6, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(e.z, embs[0].z, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(e.event_id, embs[0].event_id)
        np.testing.assert_array_equal(e.y, embs[0].y)
        for k in e.observables:
            np.testing.assert_array_equal(e.observables[k], embs[0].observables[k], err_msg=k)


def test_every_registered_model_agrees_across_batch_sizes(tiny_dataset):
    """Real models batch matrix products, so only float32 rounding may differ."""
    from graphevent.data.dataset import GraphDataset
    from graphevent.nn.registry import build_model, list_models

    data = GraphDataset(tiny_dataset, "val")
    shipped = [name for name, cls in list_models().items() if cls.__module__.startswith("graphevent.")]  # not tests' toys
    assert len(shipped) >= 9
    for name in shipped:
        torch.manual_seed(0)
        model = build_model({"name": name, **({"k": 8} if name == "particlenet" else {})}, data.info)
        cols = [predict(model, data, n) for n in SIZES]
        assert len(next(iter(cols[0].values()))) == len(data), name
        for c in cols[1:]:
            assert c.keys() == cols[0].keys(), name
            for k in c:
                np.testing.assert_allclose(c[k], cols[0][k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")


def test_loaders_batches_and_single_events_are_taken_as_they_are():
    events = toy_events(10)
    assert [b.num_graphs for b in batches(DataLoader(events, batch_size=4), batch_size=1)] == [4, 4, 2]
    assert [b.num_graphs for b in batches(Batch.from_data_list(events), batch_size=3)] == [10]
    assert [b.num_graphs for b in batches(events[0])] == [1]
    assert [b.num_graphs for b in batches(iter(events), batch_size=3)] == [3, 3, 3, 1]
    with pytest.raises(ConfigError, match=r"^batch_size 0: expected an integer >= 1$"):
        next(batches(events, 0))


def test_calls_run_in_eval_and_inference_mode_and_the_training_mode_comes_back():
    model = ToyEvalModel().train()
    seen = []
    step = lambda m, b: seen.append((m.training, torch.is_inference_mode_enabled())) or m.predict(b)  # noqa: E731
    for _ in infer(model, toy_events(10), step, batch_size=4):
        assert not torch.is_inference_mode_enabled()  # the caller's code runs outside
    assert seen == [(False, True)] * 3
    assert model.training


def test_amp_runs_the_model_under_autocast():
    model = ToyEvalModel()
    dtype = lambda m, b: m.node(b.x).dtype  # noqa: E731
    assert {d for _, d in infer(model, toy_events(4), dtype)} == {torch.float32}
    assert {d for _, d in infer(model, toy_events(4), dtype, amp=torch.bfloat16)} == {torch.bfloat16}


def _batch_size_defaults():
    """``{where: default}`` of every ``batch_size`` parameter or dataclass field with a default
    in graphevent.evaluate and graphevent.cli (their modules read, not listed by hand), but
    ``graphevent train``'s (a training batch, whose default is the experiment config's)."""
    found = {}
    for pkg in (graphevent.evaluate, graphevent.cli):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            if info.name == "graphevent.cli.train":
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if getattr(obj, "__module__", None) != module.__name__:
                    continue
                if dataclasses.is_dataclass(obj):
                    for f in dataclasses.fields(obj):
                        if f.name == "batch_size" and f.default is not dataclasses.MISSING:
                            found[f"{info.name}.{name}"] = f.default
                elif inspect.isfunction(obj):
                    p = inspect.signature(obj).parameters.get("batch_size")
                    if p is not None and p.default is not inspect.Parameter.empty:
                        found[f"{info.name}.{name}"] = p.default
    return found


def test_every_inference_batch_size_defaults_to_the_one_constant():
    found = _batch_size_defaults()
    expected = {"graphevent.evaluate.options.EvalOptions", "graphevent.evaluate.predict.PredictOptions",
                "graphevent.evaluate.probes.ProbeOptions", "graphevent.evaluate.predict.predict",
                "graphevent.evaluate.probes.pooled_embeddings", "graphevent.evaluate.inference.infer",
                "graphevent.evaluate.inference.batches", "graphevent.cli.eval.eval_cmd", "graphevent.cli.predict.predict_cmd"}
    assert expected <= found.keys(), sorted(expected - found.keys())
    assert {k: v for k, v in found.items() if v != DEFAULT_BATCH_SIZE} == {}
