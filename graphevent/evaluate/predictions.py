"""Per-event prediction files: ``predictions-<run>.parquet`` (or ``.root`` via uproot),
written by ``graphevent eval`` (one split of a dataset) and ``graphevent predict`` (raw files).

Columns, one row per event (``eval``: sorted by ``event_id``; ``predict``: input order):

==================  =========  ========================================================
column              type       meaning
==================  =========  ========================================================
event_id            int64      running number of the event over the inputs, in the order
                               given (input ``s``'s event ``i``: the events of the inputs
                               before ``s``, plus ``i``); ``eval``: the graph's ``event_id``,
                               the same number over the inputs given to ``preprocess``, so
                               ``predict`` on those files in that order gives the same ids
source              int32      number of the input file the event comes from (0, 1, ...
                               in the order given to ``preprocess`` / ``predict``)
source_file         string     that file's name (Parquet only; ROOT files list the names
                               in the ``graphevent`` metadata string)
index               int64      the event's index in that file
n_nodes             int32      ``predict``: nodes of the event's graph (0: empty event,
                               outputs NaN)
label               int64      true class index (class names in the file metadata);
                               ``predict``: -1 when the input has no labels
true_<target>       float32    every regression target of the dataset, physical units
score_<class>       float32    softmax probability per class (``<task>_score_<class>``
                               when the run has several classification tasks)
pred_<task>         float32    regression output of task ``<task>``, physical units
recon_error_<feat>  float32    autoencoders: reconstruction error per channel
==================  =========  ========================================================

Parquet files carry ``graphevent`` key-value metadata (JSON: run, split, classes, tasks,
sources). ROOT files hold one TTree ``events`` with these branches (string columns left
out) and the same JSON as a ``TObjString`` named ``graphevent``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from graphevent.errors import ConfigError
from graphevent.utils.outfile import SIGNATURE_KEY


def write_predictions(path: str | Path, columns: dict[str, np.ndarray], metadata: dict[str, Any], fmt: str = "parquet") -> Path:
    """Write ``columns`` (equal-length 1-D arrays) as Parquet or ROOT (into a place that
    appears only when complete: ``eval``'s staging folder).

    Args:
        path: output file (its suffix is replaced by ``.parquet`` / ``.root``).
        columns: column name -> array.
        metadata: JSON-serialisable description stored in the file (Parquet only).
        fmt: ``parquet`` or ``root``.
    """
    if fmt not in FORMATS.values():
        raise ConfigError(f"--format {fmt!r}: expected 'parquet' or 'root'")
    path = Path(path).with_suffix(f".{fmt}")
    with PredictionWriter(path, metadata) as writer:
        writer.write(columns)
    return path


#: file suffix -> format name
FORMATS = {".parquet": "parquet", ".root": "root"}


class PredictionWriter:
    """Write prediction columns chunk by chunk into a file.

    The file is written where it is named: callers write into a place of their own that
    appears only when complete (``eval``: its staging folder; ``predict``: the temporary
    file of :class:`~graphevent.utils.outfile.OutputFile`). An exception (the ``with``
    block) removes it. Every chunk must have the same columns. The metadata carries
    ``graphevent_output: predictions``, the signature ``--overwrite`` looks for.

    Args:
        path: ``.parquet`` or ``.root`` file (the format comes from ``fmt`` or its suffix).
        metadata: JSON-serialisable description stored in the file.
        fmt: ``parquet`` or ``root``; ``None``: from the suffix of ``path``.

    Raises:
        ConfigError: another suffix, or ``.root`` without uproot installed.
    """

    def __init__(self, path: str | Path, metadata: dict[str, Any], fmt: str | None = None) -> None:
        self.path = Path(path)
        self.format = fmt or FORMATS.get(self.path.suffix)
        if self.format is None:
            raise ConfigError(f"--out {self.path}: unknown predictions format {self.path.suffix or '(no suffix)'!r}; "
                              f"expected a file ending in {' or '.join(FORMATS)}")
        if self.format == "root":
            try:
                import uproot  # noqa: F401
            except ImportError:
                raise ConfigError(f"--out {self.path}: writing ROOT files needs uproot (pip install uproot); "
                                  "or write .parquet") from None
        self.metadata = {SIGNATURE_KEY: "predictions", **metadata}
        self._file: Any = None
        self.rows = 0

    def write(self, columns: dict[str, np.ndarray]) -> None:
        """Append one chunk (equal-length 1-D arrays; strings as object/str arrays)."""
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"prediction columns have different lengths {sorted(lengths)}")
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({k: (pa.array(list(v), pa.string()) if np.asarray(v).dtype.kind in "OU"
                                  else np.ascontiguousarray(v)) for k, v in columns.items()})
            if self._file is None:
                schema = table.schema.with_metadata({"graphevent": json.dumps(self.metadata)})
                self._file = pq.ParquetWriter(self.path, schema)
            self._file.write_table(table.replace_schema_metadata(self._file.schema.metadata))
        else:
            numeric = {k: np.ascontiguousarray(v) for k, v in columns.items() if np.asarray(v).dtype.kind not in "OU"}
            if self._file is None:
                import uproot

                self._file = uproot.recreate(self.path)
                self._file["graphevent"] = json.dumps(self.metadata)
                self._file["events"] = numeric
            else:
                self._file["events"].extend(numeric)
        self.rows += next(iter(lengths), 0)

    def close(self) -> Path:
        """Finish the file."""
        if self._file is None:
            raise ValueError(f"{self.path}: no rows written")
        self._file.close()
        self._file = None
        return self.path

    def abort(self) -> None:
        """Close and remove the unfinished file."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read a predictions file back into numpy columns (Parquet or ROOT by suffix)."""
    path = Path(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            tree = f["events"]
            return {k: np.asarray(tree[k].array(library="np")) for k in tree.keys()}
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``graphevent`` JSON metadata of a predictions file."""
    path = Path(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            return json.loads(str(f["graphevent"]))
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"graphevent", b"{}"))
