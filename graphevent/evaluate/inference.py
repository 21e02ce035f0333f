"""The streaming evaluation loop: batches in, metric states and compact per-event arrays out.

Nothing of a batch outlives its iteration: the loop updates each task's
:class:`~graphevent.metrics.base.TaskMetrics` (torchmetrics state + float32 scores) and
keeps event ids, labels and targets as numpy chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from graphevent.data.info import DatasetInfo
from graphevent.errors import DataError, RunError
from graphevent.metrics import EventBuffer, ReconstructionMetrics, TaskMetrics
from graphevent.metrics.base import task_metrics

RECONSTRUCTION = "reconstruction"


@dataclass
class TaskBinding:
    """How one model output feeds one :class:`TaskMetrics`.

    Args:
        name: task name (key of ``model.predict`` output, or ``reconstruction``).
        metrics: the task's metrics (its type's registered class; it reads its own
            truth from a batch in ``update_batch``).
    """

    name: str
    metrics: TaskMetrics


def check_compatible(run: str, run_info: DatasetInfo, data: str, data_info: DatasetInfo) -> None:
    """The dataset must have the classes and node features the run was trained on.

    Raises:
        DataError: naming both lists.
    """
    if list(run_info.classes) != list(data_info.classes):
        raise DataError(
            f"{data}: dataset classes {list(data_info.classes)} differ from the classes {list(run_info.classes)} "
            f"run {run} was trained on; evaluate on a dataset preprocessed with the same classes"
        )
    if list(run_info.node_features) != list(data_info.node_features):
        raise DataError(
            f"{data}: dataset node features {list(data_info.node_features)} differ from {list(run_info.node_features)} "
            f"of run {run}"
        )


def bind_tasks(model: Any, cfg: Any, info: DatasetInfo, data_info: DatasetInfo, signal: str | None, run: str) -> list[TaskBinding]:
    """One binding per task of the experiment (pretraining runs: one ``reconstruction``).

    Args:
        model: the run's :class:`~graphevent.nn.models.base.GraphModel`.
        cfg: its ``ExperimentConfig`` (stage, tasks).
        info: the run's DatasetInfo (classes, targets it was trained with).
        data_info: the evaluated dataset's DatasetInfo (where the targets are read).
        signal: signal class for binary tasks (name or index; ``None``: index 1).
        run: run name for error messages.
    """
    if cfg.stage == "pretrain":
        return [TaskBinding(RECONSTRUCTION, ReconstructionMetrics(info.node_features))]
    bindings = []
    for task in cfg.tasks:
        if not task.task_type.label_target and task.target not in data_info.targets:
            raise DataError(
                f"dataset has no target {task.target!r} (task {task.name!r} of run {run}); "
                f"its targets are {list(data_info.targets) or 'none'}"
            )
        bindings.append(TaskBinding(task.name, task_metrics(task, info.classes, data_info.targets, signal)))
    if not bindings:
        raise RunError(f"run {run}: stage {cfg.stage!r} but no tasks in its config; nothing to evaluate")
    return bindings


@dataclass
class EventRecord:
    """Per-event identity of everything evaluated (numpy, CPU)."""

    event_id: EventBuffer = field(default_factory=lambda: EventBuffer(np.int64))
    label: EventBuffer = field(default_factory=lambda: EventBuffer(np.int64))
    targets: EventBuffer = field(default_factory=lambda: EventBuffer(np.float32))

    def gather(self) -> None:
        for buf in (self.event_id, self.label, self.targets):
            buf.gather()

    def sort_by_event_id(self, bindings: Sequence[TaskBinding]) -> None:
        """Put every per-event array in ``event_id`` order, so one process and several DDP
        processes (whose gathered arrays come rank by rank) hold identical arrays."""
        order = np.argsort(self.event_id.array(), kind="stable")
        self.targets.reorder(order)
        self.event_id.reorder(order)
        self.label.reorder(order)
        for b in bindings:
            b.metrics.reorder(order)


@torch.inference_mode()
def run_inference(
    model: Any,
    loader: Any,
    bindings: Sequence[TaskBinding],
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> EventRecord:
    """Evaluate ``model`` on every batch of ``loader``, updating ``bindings`` in place.

    Args:
        model: a GraphModel in eval mode on ``device``.
        loader: iterable of PyG batches.
        bindings: from :func:`bind_tasks` (their metrics already on ``device``).
        device: where batches are moved.
        on_batch: called with the number of events of each batch (progress).

    Returns:
        the event ids, labels and targets in loader order.
    """
    record = EventRecord()
    recon = next((b for b in bindings if b.name == RECONSTRUCTION), None)
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        out = model.predict(batch)
        n = int(batch.num_graphs)
        y = batch.y.view(-1)
        targets = batch.targets  # (B, T)
        for b in bindings:
            if b.name == RECONSTRUCTION:
                continue
            if b.name not in out:
                raise RunError(f"model output has no {b.name!r} (it has {sorted(out)}); the run's tasks and model disagree")
            b.metrics.update_batch(out[b.name], batch)
        if recon is not None:
            if "recon_error" not in out:
                raise RunError(f"model {type(model).__name__}: predict() gave no 'recon_error' for a pretraining run")
            distance = model.loss(batch, "pretrain")[0] if getattr(model, "supports_pretrain", False) else None
            recon.metrics.update(out["recon_error"], distance)
        record.event_id.append(batch.event_id.view(-1))
        record.label.append(y)
        record.targets.append(targets)
        if on_batch is not None:
            on_batch(n)
    return record
