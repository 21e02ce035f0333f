"""The streaming loop, task binding, prediction files and explain helpers on a toy model."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from graphevent.data.info import DatasetInfo
from graphevent.errors import DataError
from graphevent.evaluate.explain import pca_2d, saliency, select_events
from graphevent.evaluate.inference import bind_tasks, check_compatible, run_inference
from graphevent.evaluate.predictions import read_predictions, write_predictions
from graphevent.nn.tasks import TaskConfig

from eval_toy import ToyEvalModel, toy_events

INFO = DatasetInfo(node_features=["a", "b", "c"], classes=["quark", "gluon"], targets=["m0", "pt"])
CFG = SimpleNamespace(stage="supervised", tasks=[TaskConfig("label", "classification"), TaskConfig("m0", "regression", "m0")])


def evaluate_with(batch_size, stage="supervised"):
    model = ToyEvalModel().eval()
    cfg = CFG if stage == "supervised" else SimpleNamespace(stage="pretrain", tasks=[])
    bindings = bind_tasks(model, cfg, INFO, INFO, None, "toy")
    record = run_inference(model, DataLoader(toy_events(), batch_size=batch_size), bindings, torch.device("cpu"))
    return bindings, record


def test_batch_size_does_not_change_metrics_or_arrays():
    (b1, r1), (b7, r7) = evaluate_with(1), evaluate_with(7)
    np.testing.assert_array_equal(r1.event_id.array(), [7 * i + 3 for i in range(40)])
    np.testing.assert_array_equal(r1.event_id.array(), r7.event_id.array())
    np.testing.assert_allclose(r1.targets.array().reshape(40, 2), r7.targets.array().reshape(40, 2))
    for a, b in zip(b1, b7):
        ma, mb = a.metrics.compute(40, seed=1), b.metrics.compute(40, seed=1)
        assert ma.keys() == mb.keys()
        for k in ma:
            np.testing.assert_allclose(np.asarray(ma[k], float), np.asarray(mb[k], float), rtol=1e-5, err_msg=k)


def test_loop_values_equal_a_direct_computation():
    bindings, record = evaluate_with(8)
    model = ToyEvalModel().eval()
    batch = Batch.from_data_list(toy_events())
    out = model.predict(batch)
    label, m0 = bindings
    np.testing.assert_allclose(label.metrics.scores.array(), out["label"].numpy(), rtol=1e-6)
    reg = m0.metrics.compute(0)
    err = (out["m0"] - batch.targets[:, 0]).double()
    assert reg["mae"] == pytest.approx(float(err.abs().mean()), rel=1e-5)
    assert reg["bias"] == pytest.approx(float(err.mean()), rel=1e-4)
    assert m0.metrics.columns().keys() == {"pred_m0"}


def test_pretrain_runs_bind_reconstruction_with_the_set_distance():
    bindings, _ = evaluate_with(10, stage="pretrain")
    assert [b.name for b in bindings] == ["reconstruction"]
    out = bindings[0].metrics.compute(0)
    model = ToyEvalModel().eval()
    losses = [float(model.loss(Batch.from_data_list(toy_events()[i:i + 10]), "pretrain")[0].detach()) for i in range(0, 40, 10)]
    assert out["set_distance"] == pytest.approx(np.mean(losses), rel=1e-5)  # 4 equal batches
    per_event = model.predict(Batch.from_data_list(toy_events()))["recon_error"]
    assert out["recon_error_b"] == pytest.approx(float(per_event[:, 1].mean()), rel=1e-5)


def test_dataset_mismatches_are_data_errors():
    other = DatasetInfo(node_features=["a", "b", "c"], classes=["light", "top"], targets=["pt"])
    with pytest.raises(DataError, match=r"ds: dataset classes \['light', 'top'\] differ from the classes \['quark', 'gluon'\] run pn"):
        check_compatible("pn", INFO, "ds", other)
    with pytest.raises(DataError, match="dataset has no target 'm0' \\(task 'm0' of run pn\\); its targets are \\['pt'\\]"):
        bind_tasks(ToyEvalModel(), CFG, INFO, other, None, "pn")
    fewer = DatasetInfo(node_features=["a", "b"], classes=["quark", "gluon"])
    with pytest.raises(DataError, match=r"node features \['a', 'b'\] differ"):
        check_compatible("pn", INFO, "ds", fewer)


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_predictions_round_trip(tmp_path, fmt):
    cols = {"event_id": np.array([3, 10, 17], np.int64), "label": np.array([1, 0, 1], np.int64),
            "score_gluon": np.array([0.9, 0.2, 0.7], np.float32), "pred_m0": np.array([50.5, 40.0, 61.0], np.float32)}
    path = write_predictions(tmp_path / "predictions-run", cols, {"run": "run", "classes": ["quark", "gluon"]}, fmt)
    assert path.name == f"predictions-run.{fmt}"
    back = read_predictions(path)
    # parquet keeps the column order; uproot writes branches in its own (sorted) order
    assert (list(back) if fmt == "parquet" else sorted(back)) == (list(cols) if fmt == "parquet" else sorted(cols))
    for k, v in cols.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype
    assert not list(tmp_path.glob(".*tmp*"))


def test_saliency_matches_finite_differences():
    model = ToyEvalModel().eval().double()
    batch = Batch.from_data_list(toy_events(2))
    batch.x = batch.x.double()
    sal = saliency(model, batch, "label")
    assert sal.shape == (batch.num_nodes,)
    eps = 1e-6
    y = batch.y
    expected = torch.zeros(batch.num_nodes, dtype=torch.float64)
    for n in range(batch.num_nodes):
        for f in range(3):
            hi, lo = batch.clone(), batch.clone()
            hi.x = batch.x.clone()
            lo.x = batch.x.clone()
            hi.x[n, f] += eps
            lo.x[n, f] -= eps
            p_hi = model.predict(hi)["label"].gather(1, y[:, None]).sum()
            p_lo = model.predict(lo)["label"].gather(1, y[:, None]).sum()
            expected[n] += abs(float(p_hi - p_lo) / (2 * eps))
    torch.testing.assert_close(sal, expected, rtol=1e-5, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())


def test_pca_recovers_the_dominant_axes():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 2)) * [5.0, 1.0]
    rot = np.linalg.qr(rng.normal(size=(4, 4)))[0][:, :2]
    x = z @ rot.T + 0.01 * rng.normal(size=(500, 4)) + 3.0
    proj, ratio = pca_2d(x)
    assert ratio[0] == pytest.approx(25 / 26, abs=0.02) and ratio[1] == pytest.approx(1 / 26, abs=0.02)
    # projections equal the latent coordinates up to sign
    for k in range(2):
        c = np.corrcoef(proj[:, k], z[:, k])[0, 1]
        assert abs(c) > 0.999


def test_select_events_takes_the_first_of_each_class():
    labels = np.array([1, 1, 0, 1, 0, 0, 2])
    assert select_events(labels, 3, 2) == [2, 4, 0, 1, 6]


def test_multiclass_runs_get_one_roc_per_class_and_score_panels(tmp_path):
    from graphevent.evaluate.inference import EventRecord, TaskBinding
    from graphevent.evaluate.runner import RunEvaluation, _comparison_figures, _run_figures
    from graphevent.metrics import ClassificationMetrics

    g = torch.Generator().manual_seed(0)
    evals = []
    for name in ("a", "b"):
        y = torch.arange(300) % 3
        probs = torch.softmax(torch.randn(300, 3, generator=g) + 2 * torch.nn.functional.one_hot(y, 3), 1)
        m = ClassificationMetrics(["light", "charm", "bottom"])
        m.update(probs, y)
        evals.append(RunEvaluation(name=name, file_stem=name, run_dir=tmp_path, bindings=[TaskBinding("flavour", m)],
                                   record=EventRecord(), metrics={"flavour": m.compute(0)}, info={}))
    figs = _comparison_figures(evals, tmp_path) + _run_figures(evals[0], tmp_path, [])
    names = sorted(p.name for _, p in figs)
    assert names == ["roc-flavour-bottom.png", "roc-flavour-charm.png", "roc-flavour-light.png", "scores-a-flavour.png"]
    for _, p in figs:
        assert p.stat().st_size > 10_000
