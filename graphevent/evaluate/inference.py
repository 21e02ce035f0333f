"""The one inference loop, and the streaming evaluation built on it.

:func:`infer` is how every part of graphevent runs a trained model over events: ``eval``
(:func:`run_inference`), ``predict`` (:func:`graphevent.evaluate.predict.predict`), the
probes (:func:`graphevent.evaluate.probes.pooled_embeddings`) and ``--explain``'s
embedding pass. It batches the events (:data:`~graphevent.evaluate.options.DEFAULT_BATCH_SIZE`
per model call unless told otherwise), moves each batch to the device, and calls the model
in eval mode, under ``torch.inference_mode`` and, when asked, ``torch.autocast``; the
model's training mode is restored afterwards. The batch size changes how many events share
a call, not the results beyond float32 rounding (a product over more rows may round
differently; ``tests/evaluate/test_inference_loop.py``).

:func:`run_inference` streams a split through it: nothing of a batch outlives its
iteration; the loop updates each task's :class:`~graphevent.metrics.base.TaskMetrics`
(torchmetrics state + float32 scores) and keeps event ids, labels and targets as numpy chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError, DataError, RunError
from graphevent.evaluate.options import DEFAULT_BATCH_SIZE
from graphevent.metrics import EventBuffer, ReconstructionMetrics, TaskMetrics
from graphevent.metrics.base import task_metrics

RECONSTRUCTION = "reconstruction"


def batches(events: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    """PyG batches of ``events``, in order.

    Args:
        events: a ``Data`` (one event), a ``Batch`` (yielded as it is), a ``DataLoader`` or
            other iterable of ``Batch`` (yielded as they come: it batches itself), or a
            sequence of ``Data`` (a list, a dataset, a ``Subset``), read ``batch_size`` at a time.
        batch_size: events per batch of a sequence of ``Data``.

    Raises:
        ConfigError: ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size {batch_size}: expected an integer >= 1")
    if isinstance(events, Batch):
        yield events
        return
    if isinstance(events, Data):
        events = [events]
    if isinstance(events, torch.utils.data.DataLoader):
        yield from events
        return
    if not (hasattr(events, "__getitem__") and hasattr(events, "__len__")):
        events = list(events)
    for start in range(0, len(events), batch_size):
        yield Batch.from_data_list([events[i] for i in range(start, min(start + batch_size, len(events)))])


def model_device(model: Any) -> torch.device:
    """Where ``model``'s parameters are (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def infer(
    model: Any,
    events: Any,
    step: Callable[[Any, Batch], Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    amp: torch.dtype | None = None,
) -> Iterator[tuple[Batch, Any]]:
    """Run ``step(model, batch)`` on every batch of ``events``: the one inference loop.

    Each call runs in eval mode under ``torch.inference_mode`` (and ``torch.autocast`` with
    ``amp``); what the caller does with the result between batches runs outside both. The
    model's training mode is restored when the loop ends (exhausted, closed or failed).

    Args:
        model: a GraphModel (or any module ``step`` knows how to call); not moved.
        events: what :func:`batches` takes.
        step: what to compute from a batch (default ``model.predict(batch)``).
        batch_size: events per call (sequences of ``Data``; a ``DataLoader`` batches itself).
        device: where batches are moved (default: :func:`model_device`).
        amp: autocast dtype (``torch.bfloat16``, ``torch.float16``); ``None``: full precision.

    Yields:
        ``(batch on device, step's result)``, in the order of ``events``.
    """
    step = step or (lambda m, b: m.predict(b))
    device = torch.device(device) if device is not None else model_device(model)
    precision = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    try:
        for batch in batches(events, batch_size):
            batch = batch.to(device, non_blocking=True)
            with torch.inference_mode(), precision:
                out = step(model, batch)
            yield batch, out
    finally:
        model.train(was_training)


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


def run_inference(
    model: Any,
    loader: Iterable[Any],
    bindings: Sequence[TaskBinding],
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> EventRecord:
    """Evaluate ``model`` on every batch of ``loader`` (through :func:`infer`), updating
    ``bindings`` in place.

    Args:
        model: a GraphModel on ``device``.
        loader: a ``DataLoader`` of PyG batches (or anything :func:`batches` takes).
        bindings: from :func:`bind_tasks` (their metrics already on ``device``).
        device: where batches are moved.
        on_batch: called with the number of events of each batch (progress).

    Returns:
        the event ids, labels and targets in loader order.
    """
    record = EventRecord()
    recon = next((b for b in bindings if b.name == RECONSTRUCTION), None)
    if recon is not None and getattr(model, "supports_pretrain", False):
        step = lambda m, b: (m.predict(b), m.loss(b, "pretrain")[0])  # noqa: E731
    else:
        step = lambda m, b: (m.predict(b), None)  # noqa: E731
    for batch, (out, distance) in infer(model, loader, step, device=device):
        n = int(batch.num_graphs)
        for b in bindings:
            if b.name == RECONSTRUCTION:
                continue
            if b.name not in out:
                raise RunError(f"model output has no {b.name!r} (it has {sorted(out)}); the run's tasks and model disagree")
            b.metrics.update_batch(out[b.name], batch)
        if recon is not None:
            if "recon_error" not in out:
                raise RunError(f"model {type(model).__name__}: predict() gave no 'recon_error' for a pretraining run")
            recon.metrics.update(out["recon_error"], distance)
        record.event_id.append(batch.event_id.view(-1))
        record.label.append(batch.y.view(-1))
        record.targets.append(batch.targets)  # (B, T)
        if on_batch is not None:
            on_batch(n)
    return record
