"""Supervised tasks from config: what each head predicts, its loss, and its output units.

A task is classification of the event label or regression of one dataset target (e.g.
jet mass ``m0``, ``pt``). Any number of tasks can be trained at once; the total loss is
``sum(weight_t * loss_t)``. Regression heads predict *standardised* targets (train-split
mean/std from the dataset manifest, stored as buffers) and :meth:`TaskSet.predict`
returns physical units.
"""

from __future__ import annotations

from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.data.info import DatasetInfo
from graphevent.config.tasks import TaskConfig  # noqa: F401  (re-exported)
from graphevent.errors import ConfigError, DataError
from graphevent.nn.layers.normalize import Standardize

#: loss functions by the names task types accept (:attr:`TaskType.losses <graphevent.config.tasks.TaskType>`).
LOSSES = {"ce": F.cross_entropy, "mse": F.mse_loss, "huber": F.huber_loss, "l1": F.l1_loss}

def check_tasks(tasks: Sequence[TaskConfig], info: DatasetInfo, where: str = "tasks") -> list[TaskConfig]:
    """Validate tasks against a dataset: unique names, regression targets that exist."""
    if not tasks:
        raise ConfigError(f"{where}: no tasks given; expected at least one classification or regression task")
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        task.validate(f"{where}[{i}]")
        if task.name in seen:
            raise ConfigError(f"{where}[{i}].name: duplicate task name {task.name!r}")
        seen.add(task.name)
        if not task.task_type.label_target and task.target not in info.targets:
            raise ConfigError(
                f"{where}[{i}].target: {task.target!r} is not a target of this dataset; "
                f"available: {', '.join(info.targets) or '(none)'}"
            )
        if task.task_type.label_target and info.num_classes < 2:
            raise ConfigError(f"{where}[{i}]: classification needs >= 2 classes; the dataset has {info.classes}")
    return list(tasks)


def default_tasks(info: DatasetInfo, regression: bool = True) -> list[TaskConfig]:
    """Classification of the label, plus (if ``regression``) MSE regression of every target."""
    tasks = [TaskConfig("label", "classification")]
    if regression:
        tasks += [TaskConfig(t, "regression", target=t) for t in info.targets]
    return tasks


class TaskSet(nn.Module):
    """Losses and physical-unit predictions for a list of tasks.

    Args:
        tasks: validated tasks (see :func:`check_tasks`).
        info: the dataset (class count, target names and statistics).

    Shapes:
        outputs: ``{task: (B, num_classes)}`` logits for classification and
        ``{task: (B,)}`` standardised values for regression; batch.y: (B,),
        batch.targets: (B, T) physical units.
    """

    def __init__(self, tasks: Sequence[TaskConfig], info: DatasetInfo) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.num_classes = info.num_classes
        self.target_names = list(info.targets)
        self.target_norm = Standardize(info.targets, info.target_stats)

    def out_channels(self, task: TaskConfig) -> int:
        """Head output size: ``num_classes`` logits or one standardised value."""
        return self.num_classes if task.task_type.label_target else 1

    def head_output(self, task: TaskConfig, y: Tensor) -> Tensor:
        """A head's raw output in the task's shape: logits ``(B, C)`` or one value ``(B,)``."""
        return y if task.task_type.label_target else y.squeeze(-1)

    def _targets(self, batch, task: TaskConfig) -> Tensor:
        if task.task_type.label_target:
            y = getattr(batch, "y", None)
            if y is None:
                raise DataError(f"task {task.name!r}: the batch has no labels 'y'")
            return y.view(-1).long()
        targets = getattr(batch, "targets", None)
        if targets is None:
            raise DataError(f"task {task.name!r}: the batch has no regression 'targets'")
        col = self.target_names.index(task.target)
        return self.target_norm(targets.view(-1, len(self.target_names)).float())[:, col]

    def losses(self, outputs: dict[str, Tensor], batch, rows: Tensor | None = None) -> dict[str, Tensor]:
        """Unweighted loss of every task (scalars), the mean over the events of ``batch`` or
        only over ``rows`` (``(B,)`` bool: the labelled events; the others' labels are not
        read). Without any such event every loss is a zero that still reaches the heads."""
        if rows is not None and not bool(rows.any()):
            # 0 * sum: zero gradients to every head (+ 0.0 turns a -0.0 into 0.0 in the logs)
            return {task.name: outputs[task.name].float().sum() * 0.0 + 0.0 for task in self.tasks}
        out = {}
        for task in self.tasks:
            pred = outputs[task.name].float()
            target = self._targets(batch, task)
            if rows is not None:
                pred, target = pred[rows], target[rows]
            out[task.name] = LOSSES[task.resolved_loss](pred, target)
        return out

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """``sum(weight_t * loss_t)``."""
        return torch.stack([t.weight * losses[t.name] for t in self.tasks]).sum()

    def predict(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Softmax probabilities (B, C) per classification task, physical values (B,) per regression."""
        out = {}
        for task in self.tasks:
            pred = outputs[task.name].float()
            if task.task_type.label_target:
                out[task.name] = pred.softmax(dim=-1)
            else:
                col = self.target_names.index(task.target)
                out[task.name] = pred * self.target_norm.std[col] + self.target_norm.mean[col]
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({[f'{t.name}:{t.type}' for t in self.tasks]})"
