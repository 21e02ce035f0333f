"""The reader contract shared by every input format.

A reader opens one input file, checks it against the data config (keys present, shapes and
channel counts right, labels inside the configured classes) and then serves contiguous
event ranges as :class:`EventChunk` objects. Ranges let several worker processes read
one file independently; readers must never load a whole file at once.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from graphevent.config.readers import get_reader_type
from graphevent.errors import DataError, MissingKeyError

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig


@dataclass
class EventChunk:
    """Events ``index[0] .. index[-1]`` of one input file, in one of two forms.

    Image form (``images`` set): ``images`` is float32 ``(n, C, H, W)``, channels-first, in
    the order of the data config's ``channels``; for channels-last files it is a transposed
    view of the data as read (not C-contiguous), which saves a copy of the chunk.

    Point form (``images`` None): flat arrays over all points of the chunk, event by event:
    ``values`` float32 ``(P, C)`` (one column per channel; a hit of channel c has zeros in
    the other columns), ``eta``/``phi`` float32 ``(P,)`` already relative to the event's
    centre, ``counts`` int64 ``(n,)`` points per event (sum = P).

    Always: ``labels`` int64 ``(n,)`` class indices, ``targets`` float32 ``(n, T)`` in the
    order of ``reader.target_keys``, ``index`` int64 ``(n,)`` event index in the file. A
    reader opened with ``labels_required=False`` (``graphevent predict``) gives label -1
    for a file without labels and NaN for a target the file does not have.
    """

    labels: np.ndarray
    targets: np.ndarray
    index: np.ndarray
    images: np.ndarray | None = None
    values: np.ndarray | None = None
    eta: np.ndarray | None = None
    phi: np.ndarray | None = None
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


class Reader(abc.ABC):
    """Base class. Subclasses set ``n_events`` in ``__init__`` after validating the file.

    Subclasses implement :meth:`read`. They raise :class:`DataError` with a message that
    names the file, the key and what was expected, e.g.
    ``qg.h5: key 'X_jets' has shape (100, 125, 125, 2); expected (N, 125, 125, 3)``.

    Args:
        path: the input file.
        cfg: the data config.
        labels_required: ``False`` for inference on unlabelled files: a missing label key
            (or a file name matching no ``file_labels`` pattern) gives label -1 and
            ``has_labels`` False, a missing target key gives NaN (named in
            ``missing_targets``). Keys that exist are still checked in full.
    """

    n_events: int
    #: events per :meth:`read` when preprocessing turns images into points (``None``: a whole
    #: chunk at once); HDF5 reads small slabs so each stays in the CPU cache.
    read_slab: int | None = None
    #: what the file libraries raise on a file that is not of this format (see :meth:`describe`)
    read_errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, EOFError)

    def __init__(self, path: str | Path, cfg: "DataConfig", labels_required: bool = True) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.labels_required = labels_required
        self.has_labels = True
        self.missing_targets: list[str] = []

    @abc.abstractmethod
    def read(self, start: int, stop: int) -> EventChunk:
        """Return events ``start <= i < stop`` (``0 <= start < stop <= n_events``)."""

    @classmethod
    @abc.abstractmethod
    def describe(cls, path: Path, manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """The arrays in ``path``: ``{key: (shape, dtype)}`` from metadata only (no events read).

        Args:
            manifest: the data manifest checking the file (``tree`` for ROOT), or ``{}``.

        Raises:
            one of :attr:`read_errors` when the file is not of this format.
        """

    def close(self) -> None:
        """Release file handles (readers are also context managers)."""

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load_labels_and_targets(self, per_event) -> None:
        """Set ``_labels`` and ``_targets`` for the whole file.

        Args:
            per_event: ``key -> (n_events,)`` array reader of the concrete format (it checks
                the key exists and has one value per event). Labels come from
                ``reader.label_key`` (checked against the classes) unless the config gives a
                fixed label for this file (one file per class).
        """
        label = self.file_label()
        if label is None:
            labels = self.optional(per_event, self.cfg.reader.label_key)
            self.has_labels = labels is not None
            self._labels = self.check_labels(labels, 0) if self.has_labels else np.full(self.n_events, -1, np.int64)
        else:
            self._labels = np.full(self.n_events, label, dtype=np.int64)
        columns = []
        for k in self.cfg.reader.target_keys:
            values = self.optional(per_event, k)
            if values is None:
                self.missing_targets.append(k)
                columns.append(np.full(self.n_events, np.nan, np.float32))
            else:
                columns.append(np.asarray(values, dtype=np.float32).reshape(self.n_events))
        self._targets = np.stack(columns, axis=1) if columns else np.zeros((self.n_events, 0), np.float32)

    def file_label(self) -> int | None:
        """The configured label of every event of this file (``-1``: unlabelled file under
        ``labels_required=False``), or ``None`` when labels are read from ``label_key``."""
        from graphevent.io._common import fixed_label

        try:
            return fixed_label(self.path, self.cfg)
        except DataError:  # file name matches no file_labels pattern
            if self.labels_required:
                raise
            self.has_labels = False
            return -1

    def optional(self, per_event, key: str):
        """``per_event(key)``; ``None`` for a missing key when labels are not required."""
        try:
            return per_event(key)
        except MissingKeyError:
            if self.labels_required:
                raise
            return None

    def check_labels(self, labels: np.ndarray, start: int) -> np.ndarray:
        """Labels as int64, raising if one is outside the configured classes."""
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        n_classes = len(self.cfg.classes)
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                bad = int(np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))[0])
                raise DataError(
                    f"{self.path.name}: label of event {start + bad} is {float(labels[bad])!r}; expected an integer class index"
                )
        out = labels.astype(np.int64)
        bad = np.flatnonzero((out < 0) | (out >= n_classes))
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{self.path.name}: label of event {start + i} is {out[i]}; expected 0..{n_classes - 1} "
                f"(classes {self.cfg.classes})"
            )
        return out


def open_reader(path: str | Path, cfg: "DataConfig", labels_required: bool = True) -> Reader:
    """Open ``path`` with the reader named by ``cfg.reader.format``.

    ``labels_required=False``: labels and targets may be absent (see :class:`Reader`).

    Raises:
        DataError: missing file, unreadable/corrupt file, or content that does not match cfg.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: input file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    return reader_class(cfg.reader.format)(path, cfg, labels_required)


def reader_class(fmt: str) -> type[Reader]:
    """The reader class registered for format ``fmt`` (its module is imported now)."""
    reader = get_reader_type(fmt).reader
    if isinstance(reader, type):
        return reader
    module, name = reader.split(":")
    return getattr(importlib.import_module(f"graphevent.io.{module}"), name)
