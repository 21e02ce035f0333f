"""Per-event prediction files: ``predictions-<run>.parquet`` (or ``.root`` via uproot).

Columns, one row per event (sorted by ``event_id``):

==================  =========  ========================================================
column              type       meaning
==================  =========  ========================================================
event_id            int64      dataset-wide event number (the graph's ``event_id``)
label               int64      true class index (class names in the file metadata)
true_<target>       float32    every regression target of the dataset, physical units
score_<class>       float32    softmax probability per class (``<task>_score_<class>``
                               when the run has several classification tasks)
pred_<task>         float32    regression output of task ``<task>``, physical units
recon_error_<feat>  float32    autoencoders: reconstruction error per channel
==================  =========  ========================================================

Parquet files carry ``graphevent`` key-value metadata (JSON: run, split, classes, tasks).
ROOT files hold one TTree ``events`` with these branches (class names: ``metrics.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from graphevent.errors import ConfigError


def write_predictions(path: str | Path, columns: dict[str, np.ndarray], metadata: dict[str, Any], fmt: str = "parquet") -> Path:
    """Write ``columns`` (equal-length 1-D arrays) as Parquet or ROOT, atomically.

    Args:
        path: output file (its suffix is replaced by ``.parquet`` / ``.root``).
        columns: column name -> array.
        metadata: JSON-serialisable description stored in the file (Parquet only).
        fmt: ``parquet`` or ``root``.
    """
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"prediction columns have different lengths {sorted(lengths)}")
    path = Path(path).with_suffix(f".{fmt}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: np.ascontiguousarray(v) for k, v in columns.items()})
        table = table.replace_schema_metadata({"graphevent": json.dumps(metadata)})
        pq.write_table(table, tmp)
    elif fmt == "root":
        import uproot

        with uproot.recreate(tmp) as f:
            f["events"] = {k: np.ascontiguousarray(v) for k, v in columns.items()}
    else:
        raise ConfigError(f"--format {fmt!r}: expected 'parquet' or 'root'")
    tmp.replace(path)
    return path


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
    return {name: table.column(name).to_numpy() for name in table.column_names}
