"""Image datasets stored as Parquet rows of nested lists (the CMS E2E quark/gluon files).

Each row is one event: the image column holds nested lists ``(C, H, W)`` (or ``(H, W, C)``
with ``layout: channels_last``) and scalar columns hold labels and targets. The public
files store one event per row group; several events per row group work the same.

Event ranges are mapped to row groups with the file's row-group metadata, and only the
row groups that overlap the range are read, so a file is never loaded whole. Nested
lists become numpy by flattening the Arrow list arrays (no Python objects per value).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graphevent.errors import DataError
from graphevent.io._common import (
    check_range,
    expected_image_text,
    image_event_shape,
    missing_key,
    to_channels_first,
    unreadable,
)
from graphevent.io.base import EventChunk, Reader

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig

_READ_ERRORS = (pa.ArrowException, OSError)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _list_depth(t: pa.DataType) -> tuple[int, pa.DataType]:
    depth = 0
    while _is_list(t):
        depth += 1
        t = t.value_type
    return depth, t


def _event_shape_text(value) -> str:
    """Nested-list shape of one event as text; ragged levels show ``min..max``."""
    dims, level = [], [value]
    while level and all(isinstance(v, list) for v in level):
        lengths = {len(v) for v in level}
        dims.append(str(min(lengths)) if len(lengths) == 1 else f"{min(lengths)}..{max(lengths)}")
        level = [item for v in level for item in v]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class ParquetImageReader(Reader):
    """Serve image events from a Parquet file; validated against the data config at open.

    Args:
        path: the ``.parquet`` file.
        cfg: data config; uses ``reader.image_key``, ``reader.layout``, ``reader.label_key``
            (or ``label`` / ``file_labels``), ``reader.target_keys``, ``channels`` and
            ``image.height`` / ``image.width``.

    Shapes:
        file: image column: nested lists ``(C, H, W)`` per row (``(H, W, C)`` channels_last);
        label and target columns: one number per row
        -> ``read(start, stop).images``: ``(stop - start, C, H, W)`` float32
    """

    read_errors = (*Reader.read_errors, pa.ArrowException)

    def __init__(self, path: str | Path, cfg: "DataConfig", labels_required: bool = True) -> None:
        super().__init__(path, cfg, labels_required)
        try:
            self._pf = pq.ParquetFile(self.path)
        except _READ_ERRORS as exc:
            raise unreadable(self.path, "Parquet", exc) from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @classmethod
    def describe(cls, path: Path, manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """Columns; a nested-list column reports ``(rows, *first row's nesting)`` and its leaf type."""
        with pq.ParquetFile(path) as pf:
            n = pf.metadata.num_rows
            first = next(pf.iter_batches(batch_size=1), None) if n else None
            out = {}
            for field in pf.schema_arrow:
                t, inner = field.type, []
                value = first.column(field.name)[0].as_py() if first is not None and len(first) else None
                while hasattr(t, "value_type"):
                    inner.append(len(value) if isinstance(value, list) else None)
                    value = value[0] if isinstance(value, list) and value else None
                    t = t.value_type
                out[field.name] = ((n, *inner), str(t))
            return out

    def _column_type(self, key: str) -> pa.DataType:
        schema = self._pf.schema_arrow
        if key not in schema.names:
            raise missing_key(self.path, key, schema.names, what="columns")
        return schema.field(key).type

    def _scalar_columns(self, keys: list[str]) -> list[np.ndarray]:
        """Per-event number columns (labels, targets), read together in one pass."""
        for key in keys:
            t = self._column_type(key)
            if not _is_number(t):
                raise DataError(f"{self.path.name}: key {key!r} has type {t}; expected one number per event")
        if not keys:
            return []
        table = self._pf.read(columns=list(dict.fromkeys(keys)), use_threads=False)
        out = []
        for key in keys:
            col = table.column(key)
            if col.null_count:
                raise DataError(
                    f"{self.path.name}: key {key!r} has {col.null_count} missing values; expected one number per event"
                )
            out.append(col.to_numpy())
        return out

    def _open(self) -> None:
        cfg, name = self.cfg, self.path.name
        key = cfg.reader.image_key
        t = self._column_type(key)
        depth, leaf = _list_depth(t)
        if depth != 3 or not _is_number(leaf):
            raise DataError(
                f"{name}: key {key!r} has type {t}; expected nested lists of numbers of shape "
                f"{expected_image_text(cfg, with_n=False)} per event"
            )
        meta = self._pf.metadata
        rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self._offsets = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])
        self.n_events = int(self._offsets[-1])

        try:
            label = self.file_label()
            names = set(self._pf.schema_arrow.names)
            present = lambda k: self.labels_required or k in names  # noqa: E731  (optional keys may be absent)
            label_keys = [cfg.reader.label_key] if label is None and present(cfg.reader.label_key) else []
            target_keys = [k for k in cfg.reader.target_keys if present(k)]
            self.missing_targets = [k for k in cfg.reader.target_keys if k not in target_keys]
            values = dict(zip(label_keys + target_keys, self._scalar_columns(label_keys + target_keys)))
            if label_keys:
                self._labels = self.check_labels(values[cfg.reader.label_key], 0)
            else:
                self.has_labels = label is not None and label >= 0
                self._labels = np.full(self.n_events, -1 if label is None else label, dtype=np.int64)
            columns = [values[k].astype(np.float32) if k in values else np.full(self.n_events, np.nan, np.float32)
                       for k in cfg.reader.target_keys]
            if self.n_events:  # the first event's image shape, before any long run starts
                first = self._pf.read_row_group(0, columns=[key]).column(0).slice(0, 1)
                self._to_images(first, 0)
        except _READ_ERRORS as exc:
            raise unreadable(self.path, "Parquet", exc) from None
        self._targets = np.stack(columns, axis=1) if columns else np.zeros((self.n_events, 0), np.float32)

    def _to_images(self, column: pa.ChunkedArray, first_event: int) -> np.ndarray:
        """Nested-list column -> ``(n, *event_shape)`` float32, checking every list length."""
        key, shape = self.cfg.reader.image_key, image_event_shape(self.cfg)
        parts, pos = [], first_event
        for chunk in column.chunks:
            level = chunk
            for depth, size in enumerate(shape):
                if level.null_count:
                    raise DataError(f"{self.path.name}: key {key!r} has missing values in events {pos}..{pos + len(chunk) - 1}")
                lengths = pc.list_value_length(level).to_numpy(zero_copy_only=False)
                bad = np.flatnonzero(lengths != size)
                if bad.size:
                    local = int(bad[0]) // int(np.prod(shape[:depth], dtype=np.int64))
                    found = _event_shape_text(chunk[local].as_py())
                    raise DataError(
                        f"{self.path.name}: key {key!r} of event {pos + local} has shape {found}; "
                        f"expected {expected_image_text(self.cfg, with_n=False)}"
                    )
                level = level.flatten()
            if level.null_count:
                raise DataError(f"{self.path.name}: key {key!r} has missing values in events {pos}..{pos + len(chunk) - 1}")
            values = level.to_numpy(zero_copy_only=False)
            parts.append(values.reshape((len(chunk),) + shape))
            pos += len(chunk)
        if not parts:
            return np.zeros((0,) + shape, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read(self, start: int, stop: int) -> EventChunk:
        check_range(self.n_events, start, stop)
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        last = int(np.searchsorted(self._offsets, stop, side="left")) - 1
        try:
            # one thread: preprocessing parallelises over worker processes, and on a busy
            # machine Arrow's thread pool made decoding slower, not faster
            table = self._pf.read_row_groups(
                list(range(first, last + 1)), columns=[self.cfg.reader.image_key], use_threads=False
            )
        except _READ_ERRORS as exc:
            raise unreadable(self.path, "Parquet", f"events {start}..{stop - 1}: {exc}") from None
        column = table.column(0).slice(start - int(self._offsets[first]), stop - start)
        images = self._to_images(column, start)
        return EventChunk(
            labels=self._labels[start:stop].copy(),
            targets=self._targets[start:stop].copy(),
            index=np.arange(start, stop, dtype=np.int64),
            images=to_channels_first(images, self.cfg.reader.layout),
        )

    def close(self) -> None:
        pf = getattr(self, "_pf", None)
        if pf is not None:
            pf.close()
