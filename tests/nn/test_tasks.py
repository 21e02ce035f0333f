"""Task configs, losses and physical-unit predictions, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from nn_helpers import tiny_info
from graphevent.config.base import from_dict
from graphevent.errors import ConfigError
from graphevent.nn.tasks import TaskConfig, TaskSet, check_tasks, default_tasks


def test_task_config_from_yaml_mapping_and_its_errors():
    task = from_dict(TaskConfig, {"name": "m0", "type": "regression", "target": "m0", "loss": "huber"}, "tasks[1]")
    assert task.resolved_loss == "huber" and task.weight == 1.0
    assert TaskConfig("label", "classification").resolved_loss == "ce"
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.target: missing for regression task 'mass'"):
        from_dict(TaskConfig, {"name": "mass", "type": "regression"}, "tasks[0]")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.loss: 'mse' for a classification task; expected 'ce'"):
        from_dict(TaskConfig, {"name": "c", "type": "classification", "loss": "mse"}, "tasks[0]")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.type: invalid value 'ranking'"):
        from_dict(TaskConfig, {"name": "c", "type": "ranking"}, "tasks[0]")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.weight: -1.0 is negative"):
        from_dict(TaskConfig, {"name": "c", "type": "classification", "weight": -1}, "tasks[0]")


def test_check_tasks_against_the_dataset():
    info = tiny_info()
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.target: 'mass' is not a target of this dataset; available: m0, pt"):
        check_tasks([TaskConfig("label", "classification"), TaskConfig("mass", "regression", target="mass")], info)
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.name: duplicate task name 'a'"):
        check_tasks([TaskConfig("a", "classification"), TaskConfig("a", "regression", target="m0")], info)
    with pytest.raises(ConfigError, match="tasks: no tasks given"):
        check_tasks([], info)
    assert [t.name for t in default_tasks(info)] == ["label", "m0", "pt"]
    assert [t.name for t in default_tasks(info, regression=False)] == ["label"]


def test_task_losses_and_predictions_by_hand():
    info = tiny_info()  # m0: mean 50, std 10; pt: mean 200, std 30
    tasks = [
        TaskConfig("label", "classification", weight=2.0),
        TaskConfig("m0", "regression", target="m0"),
        TaskConfig("pt", "regression", target="pt", loss="l1"),
    ]
    ts = TaskSet(check_tasks(tasks, info), info)
    batch = Batch.from_data_list([
        Data(x=torch.zeros(1, 3), y=torch.tensor([1]), targets=torch.tensor([[60.0, 170.0]])),
        Data(x=torch.zeros(1, 3), y=torch.tensor([0]), targets=torch.tensor([[50.0, 230.0]])),
    ])
    outputs = {
        "label": torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]),  # p(correct) = 1/2, 3/4
        "m0": torch.tensor([0.0, 0.0]),  # standardised targets 1, 0 -> mse 0.5
        "pt": torch.tensor([0.0, 0.0]),  # standardised targets -1, 1 -> l1 1
    }
    losses = ts.losses(outputs, batch)
    ce = -(math.log(0.5) + math.log(0.75)) / 2
    assert losses["label"].item() == pytest.approx(ce, rel=1e-6)
    assert losses["m0"].item() == pytest.approx(0.5)
    assert losses["pt"].item() == pytest.approx(1.0)
    assert ts.total(losses).item() == pytest.approx(2 * ce + 0.5 + 1.0, rel=1e-6)
    pred = ts.predict({"label": outputs["label"], "m0": torch.tensor([1.0, -0.5]), "pt": torch.tensor([0.0, 2.0])})
    assert torch.allclose(pred["label"], torch.tensor([[0.5, 0.5], [0.75, 0.25]]))
    assert pred["m0"].tolist() == [60.0, 45.0] and pred["pt"].tolist() == [200.0, 260.0]


def test_head_output_shape_comes_from_the_task_type():
    info = tiny_info()
    ts = TaskSet(check_tasks([TaskConfig("label", "classification"), TaskConfig("m0", "regression", target="m0")], info), info)
    label, m0 = ts.tasks
    logits, value = torch.arange(6.0).view(3, 2), torch.arange(3.0).view(3, 1)
    assert ts.out_channels(label) == 2 and ts.out_channels(m0) == 1
    assert torch.equal(ts.head_output(label, logits), logits)  # (B, C) logits unchanged
    assert torch.equal(ts.head_output(m0, value), torch.tensor([0.0, 1.0, 2.0]))  # (B, 1) -> (B,)
