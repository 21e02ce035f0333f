"""Every registered task type: its config, loss, metrics (training validation = eval), names and labels.

The list of task types comes from the registry, so a new type is checked here as soon as it
is registered.
"""

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphevent.config.experiment import ExperimentConfig, metric_mode
from graphevent.config.tasks import TASK_TYPES, TaskConfig
from graphevent.errors import ConfigError
from graphevent.metrics.base import TASK_METRICS, task_metrics
from graphevent.metrics.schema import TASK_KINDS
from graphevent.metrics.tables import metric_label
from graphevent.nn.tasks import LOSSES

CLASSES = ("bkg", "sig")
TARGETS = ("m0", "pt")
# hand example of test_classification: AUC 11/16, accuracy 5/8
P_SIGNAL = torch.tensor([0.9, 0.6, 0.6, 0.2, 0.6, 0.6, 0.3, 0.1])
LABELS = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])


def task_of(type_name: str) -> TaskConfig:
    return TaskConfig("t", type_name, target=None if TASK_TYPES[type_name].label_target else "pt")


def batch_and_pred(type_name: str):
    """Eight events with known truth and the task's prediction for them."""
    targets = torch.stack([torch.arange(8.0), 10.0 * torch.arange(8.0)], dim=1)
    batch = Batch.from_data_list([Data(x=torch.zeros(1, 1), y=LABELS[i:i + 1], targets=targets[i:i + 1]) for i in range(8)])
    if TASK_TYPES[type_name].label_target:
        return batch, torch.stack([1 - P_SIGNAL, P_SIGNAL], dim=1)
    return batch, 10.0 * torch.arange(8.0) + torch.tensor([1.0, -1.0, 2.0, -2.0, 0.0, 0.0, 4.0, 0.0])


def test_the_registry_holds_the_two_shipped_types():
    assert sorted(TASK_TYPES) == ["classification", "regression"]
    assert sorted(TASK_METRICS) == sorted(TASK_TYPES)


@pytest.mark.parametrize("type_name", list(TASK_TYPES))
def test_task_type_owns_loss_metrics_names_and_labels(type_name):
    kind = TASK_TYPES[type_name]
    task = task_of(type_name)
    task.validate()
    assert task.resolved_loss == kind.default_loss
    assert set(kind.losses) <= set(LOSSES)
    assert set(kind.maximise) <= set(kind.val_metrics)
    assert set(kind.kinds) <= set(TASK_KINDS)
    cfg = ExperimentConfig(stage="supervised", model={"name": "particlenet"}, tasks=[task])
    names = [f"val_t_{m}" for m in kind.val_metrics]
    assert cfg.metric_names() == ["val_loss", *names]
    assert [metric_mode(n) for n in names] == ["max" if m in kind.maximise else "min" for m in kind.val_metrics]
    m = task_metrics(task, CLASSES, TARGETS)
    assert isinstance(m, TASK_METRICS[type_name])
    batch, pred = batch_and_pred(type_name)
    m.update_batch(pred, batch)
    assert sorted(m.validation_values()) == sorted(kind.val_metrics)
    assert m.describe()["kind"] in kind.kinds
    labels = dict(kind.labels)
    assert set(kind.val_metrics) <= set(labels)
    for name in m.headline:  # every headline figure has its type's table label
        if not name.startswith("rejection_"):
            assert metric_label(name) == labels[name]


def test_rejection_labels():
    assert metric_label("rejection_at_0.3") == "1/εB @ εS=0.3"
    assert metric_label("rejection_gamma_jet_at_0.5") == "1/εB(gamma_jet) @ εS=0.5"
    assert metric_label("rejection_gamma_jet_at_0.5", short=True) == "1/εB(gamma_jet) @ 0.5"


@pytest.mark.parametrize("type_name", list(TASK_TYPES))
def test_validation_values_are_the_eval_values(type_name):
    """Training validation reads the same metric objects as ``graphevent eval``."""
    batch, pred = batch_and_pred(type_name)
    m = task_metrics(task_of(type_name), CLASSES, TARGETS)
    m.update_batch(pred, batch)
    val = m.validation_values()
    full = m.compute(resamples=0)
    for name, value in val.items():
        assert value == pytest.approx(full[name])


def test_hand_values():
    batch, pred = batch_and_pred("classification")
    m = task_metrics(task_of("classification"), CLASSES, TARGETS)
    m.update_batch(pred, batch)
    assert m.validation_values() == pytest.approx({"auc": 11 / 16, "accuracy": 5 / 8})
    assert m.describe()["signal"] == "sig"  # the signal class comes from the metrics (index 1 by default)
    m0 = task_metrics(task_of("classification"), CLASSES, TARGETS, signal="bkg")
    m0.update_batch(pred, batch)  # bkg as signal: its own score p_bkg = 1 - p_sig, the same AUC
    assert m0.describe()["signal"] == "bkg" and m0.validation_values()["auc"] == pytest.approx(11 / 16)
    batch, pred = batch_and_pred("regression")
    r = task_metrics(task_of("regression"), CLASSES, TARGETS)
    r.update_batch(pred, batch)  # target pt = column 1 = 10 * i; errors 1,1,2,2,0,0,4,0
    assert r.validation_values() == pytest.approx({"mae": 10 / 8})


def test_unknown_type_and_wrong_loss_name_the_registry():
    with pytest.raises(ConfigError, match=r"^task\.type: invalid value 'segmentation'; expected one of 'classification', 'regression'$"):
        TaskConfig("t", "segmentation").validate()
    with pytest.raises(ConfigError, match=r"^task\.loss: 'ce' for a regression task; expected one of 'mse', 'huber', 'l1'$"):
        TaskConfig("t", "regression", target="pt", loss="ce").validate()
