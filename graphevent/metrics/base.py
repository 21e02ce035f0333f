"""What every task's metrics share: streaming torchmetrics state plus compact per-event arrays.

Each :class:`TaskMetrics` is updated batch by batch. Summary numbers (AUC, MAE, ...) come
from ``torchmetrics`` objects whose state is synchronised across DDP ranks by torchmetrics
itself. Exact ROC curves, bootstrap intervals and prediction files need per-event values,
so each task also keeps them in an :class:`EventBuffer`: CPU numpy chunks of float32
scores / int64 labels, a few bytes per event (1M events x 2 classes = 8 MB). No graph or
batch is ever kept, so evaluation memory does not grow with the size of the events.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch


def _dist_world() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class EventBuffer:
    """Per-event values appended batch by batch as CPU numpy chunks.

    Args:
        dtype: numpy dtype the values are stored as (``float32`` for scores).
    """

    def __init__(self, dtype: np.dtype | type = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        self._chunks: list[np.ndarray] = []

    def append(self, values: torch.Tensor | np.ndarray) -> None:
        if isinstance(values, torch.Tensor):
            values = values.detach().to("cpu").numpy()
        self._chunks.append(np.asarray(values, dtype=self.dtype))

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    def array(self) -> np.ndarray:
        """All values so far, concatenated (one chunk kept afterwards)."""
        if not self._chunks:
            return np.zeros((0,), dtype=self.dtype)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    def gather(self) -> None:
        """Replace the local values by those of all DDP ranks (rank order); no-op without DDP."""
        if _dist_world() == 1:
            return
        parts: list[Any] = [None] * _dist_world()
        torch.distributed.all_gather_object(parts, self.array())
        self._chunks = [np.concatenate([p for p in parts if len(p)])] if any(len(p) for p in parts) else []

    def reorder(self, order: np.ndarray) -> None:
        """Permute the values (``order`` as from ``np.argsort``)."""
        self._chunks = [self.array()[order]]

    def reset(self) -> None:
        self._chunks = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype}, events={len(self)})"


class TaskMetrics(abc.ABC):
    """Streaming metrics of one task (a classification head, a regression head, a reconstruction).

    Subclasses define ``kind``, the ``headline`` metric names shown in tables, and
    ``update`` / ``compute`` / ``columns``. A subclass registered for a task type
    (:func:`register_task_metrics`) also defines :meth:`for_task`, :meth:`update_batch` and
    :meth:`validation_values`: the same object serves training validation and evaluation.
    """

    kind: ClassVar[str]
    #: metric names shown in terminal / markdown tables, in order.
    headline: tuple[str, ...] = ()

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> "TaskMetrics":
        """Move the torchmetrics state to ``device`` (per-event buffers stay on CPU)."""

    @abc.abstractmethod
    def buffers(self) -> dict[str, EventBuffer]:
        """The per-event buffers, by name (gathered across ranks by :meth:`gather`)."""

    @abc.abstractmethod
    def compute(self, resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
        """Metric values plus ``<name>_ci95 = [low, high]`` bootstrap intervals.

        Values are floats (``inf`` allowed for rejections, ``nan`` when undefined) or, for
        confusion matrices, nested lists of ints.
        """

    @abc.abstractmethod
    def columns(self) -> dict[str, np.ndarray]:
        """Per-event columns for the predictions file, by column name."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Task conventions recorded next to the metrics (kind, classes, signal, target)."""

    @classmethod
    def for_task(cls, task: Any, classes: Sequence[str], targets: Sequence[str], signal: int | str | None = None) -> "TaskMetrics":
        """The metrics of one supervised task (a ``TaskConfig``) on a dataset with ``classes``
        and regression ``targets``; ``signal``: the signal class of a binary task."""
        raise NotImplementedError(f"{cls.__name__} is not the metrics of a task type")

    def update_batch(self, pred: torch.Tensor, batch: Any) -> None:
        """Update from the task's ``model.predict`` output and the batch it came from."""
        raise NotImplementedError(f"{type(self).__name__} has no batch update")

    def validation_values(self) -> dict[str, float]:
        """The task type's ``val_metrics`` (point values, no bootstrap), for training validation."""
        raise NotImplementedError(f"{type(self).__name__} reports no validation metrics")

    #: the predictions-file columns have generic names (``score_<class>``) that several
    #: tasks of one run would share: prefixed with the task name when there are several.
    generic_columns: ClassVar[bool] = False

    def figures(self, task: str, run: str, out: Path, stem: str) -> list[tuple[str, Path]]:
        """Per-run figures of this task written under ``out``: ``[(caption, path)]``."""
        return []

    @classmethod
    def comparison_figures(
        cls, task: str, runs: Sequence[tuple[str, dict[str, Any], "TaskMetrics"]], out: Path, definitions: dict[str, str]
    ) -> list[tuple[str, Path]]:
        """Figures of one task over several runs, written under ``out``: ``[(caption, path)]``.

        Args:
            runs: ``(run name, its computed values of this task, its metrics)`` per run.
            definitions: run name -> what its model's reconstruction error means, if it says.
        """
        return []

    def gather(self) -> None:
        """Collect every rank's per-event values (call once after the last update)."""
        for buf in self.buffers().values():
            buf.gather()

    def reorder(self, order: np.ndarray) -> None:
        """Permute every per-event buffer (those with ``len(order)`` entries) by ``order``."""
        for buf in self.buffers().values():
            if len(buf) == len(order):
                buf.reorder(order)

    def __len__(self) -> int:
        bufs = list(self.buffers().values())
        return len(bufs[0]) if bufs else 0


TASK_METRICS: dict[str, type[TaskMetrics]] = {}


def register_task_metrics(task_type: str):
    """Class decorator: the metrics of task type ``task_type`` (a name in
    :data:`graphevent.config.tasks.TASK_TYPES`)."""
    from graphevent.config.tasks import get_task_type

    get_task_type(task_type)

    def wrap(cls: type[TaskMetrics]) -> type[TaskMetrics]:
        if task_type in TASK_METRICS:
            raise ValueError(f"task type {task_type!r} already has metrics {TASK_METRICS[task_type].__name__}")
        TASK_METRICS[task_type] = cls
        return cls

    return wrap


def task_metrics(task: Any, classes: Sequence[str], targets: Sequence[str], signal: int | str | None = None) -> TaskMetrics:
    """The metrics object of one task (a ``TaskConfig``), from its type's registered class."""
    return TASK_METRICS[task.type].for_task(task, classes, targets, signal)


def with_intervals(values: dict[str, float], intervals: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Merge point values and intervals as ``name, name_ci95`` pairs (interval keys only if present)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = value
        if name in intervals:
            out[f"{name}_ci95"] = [intervals[name][0], intervals[name][1]]
    return out

