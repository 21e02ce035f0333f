"""A training split where only a subset of the events keeps its labels (semi-supervised training)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class PartialLabels:
    """The events of ``dataset``, each with a ``labelled`` flag; the others' labels hidden.

    Every event is returned as by ``dataset`` (a shallow copy: the caller's ``Data`` is never
    modified) with ``labelled``, a ``(1,)`` bool tensor (PyG batching makes it ``(B,)``).
    Events outside ``labelled`` get ``y`` and ``targets`` replaced by zeros, so their true
    labels never reach a model or a loss: training with the labels of the unlabelled events
    permuted is bit-identical. Everything else (``info``, ``event_ids``,
    ``num_nodes_per_event``, ...) is the wrapped dataset's.

    Args:
        dataset: the training events (indexable, with ``len``).
        labelled: positions of the events that keep their labels (e.g. from
            :func:`~graphevent.data.label_subset.label_subset`).
    """

    def __init__(self, dataset: Sequence[Any], labelled: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        flags = np.zeros(len(dataset), dtype=bool)
        flags[np.asarray(labelled, dtype=np.int64)] = True
        self.flags = flags

    @property
    def num_labelled(self) -> int:
        return int(self.flags.sum())

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        data = copy.copy(self.dataset[i])
        labelled = bool(self.flags[i])
        data.labelled = torch.tensor([labelled])
        if not labelled:
            for key in ("y", "targets"):
                value = getattr(data, key, None)
                if value is not None:
                    setattr(data, key, torch.zeros_like(value))
        return data

    def __getattr__(self, name: str):
        if name in ("dataset", "flags"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)} events, {self.num_labelled} labelled)"
