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
    ``update`` / ``compute`` / ``columns``.
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


def with_intervals(values: dict[str, float], intervals: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Merge point values and intervals as ``name, name_ci95`` pairs (interval keys only if present)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = value
        if name in intervals:
            out[f"{name}_ci95"] = [intervals[name][0], intervals[name][1]]
    return out

