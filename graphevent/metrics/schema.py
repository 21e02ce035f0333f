"""The ``metrics.json`` document: building it from computed metrics, and checking its schema.

Layout (schema version 1; the full description with an example is ``docs/metrics_schema.md``)::

    {
      "schema_version": 1,
      "graphevent_version": "0.1.0",
      "created": "2025-01-01T12:00:00Z",
      "dataset": {"path": str, "split": str, "classes": [str], "targets": [str], "n_events": int},
      "checkpoint": "best" | "last",
      "bootstrap": {"resamples": int, "confidence": 0.95, "seed": int, "method": str},
      "runs": {RUN: {TASK: {METRIC: VALUE, METRIC + "_ci95": [LOW, HIGH], ...}}},
      "run_info": {RUN: {"run_dir": str, "checkpoint_file": str, "epoch": int | null,
                         "model": str, "stage": str, "n_events": int,
                         "tasks": {TASK: {"kind": str, "headline": [METRIC], ...}}}}
    }

A VALUE is a JSON number, the string ``"inf"`` (infinite background rejection: no
background event passes the cut), ``null`` (undefined, e.g. an AUC without both classes),
or -- for ``confusion_matrix`` only -- a list of lists of integers (rows = true class).
JSON has no infinity, hence the string; ``float("inf")`` parses it back.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from graphevent import __version__
from graphevent.config.tasks import TASK_TYPES
from graphevent.errors import DataError

SCHEMA_VERSION = 1
#: the ``kind`` values of the registered task types, plus a pretraining run's reconstruction.
TASK_KINDS = (*(k for t in TASK_TYPES.values() for k in t.kinds), "reconstruction")


def encode_value(value: Any) -> Any:
    """JSON-safe metric value: ``inf`` -> ``"inf"``, ``nan`` -> ``None``; lists recursively."""
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_value(value: Any) -> float | None:
    """Inverse of :func:`encode_value` for a scalar (``"inf"`` -> ``inf``)."""
    if isinstance(value, str):
        return float(value)
    return None if value is None else float(value)


def build_document(
    runs: dict[str, dict[str, dict[str, Any]]],
    run_info: dict[str, dict[str, Any]],
    dataset: dict[str, Any],
    checkpoint: str,
    bootstrap: dict[str, Any],
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the ``metrics.json`` document (values encoded with :func:`encode_value`).

    ``comparison`` (optional): per binary task, AUC differences of every run to a reference
    run with paired bootstrap intervals (``graphevent.evaluate.runner.paired_comparisons``)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "graphevent_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": dataset,
        "checkpoint": checkpoint,
        "bootstrap": bootstrap,
        "runs": {
            run: {task: {k: encode_value(v) for k, v in metrics.items()} for task, metrics in tasks.items()}
            for run, tasks in runs.items()
        },
        "run_info": run_info,
    }
    if comparison:
        doc["comparison"] = {
            task: {"reference": c["reference"],
                   "runs": {run: {k: encode_value(v) for k, v in d.items()} for run, d in c["runs"].items()}}
            for task, c in comparison.items()
        }
    validate_document(doc)
    return doc


def _is_scalar(v: Any) -> bool:
    if v is None or v in ("inf", "-inf"):
        return True
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _need(cond: bool, where: str, expected: str, found: Any) -> None:
    if not cond:
        shown = repr(found)
        raise DataError(f"metrics.json: {where} is {shown[:80]}; expected {expected}")


def _validate_comparison(doc: dict[str, Any]) -> None:
    """The optional ``comparison`` block: task -> reference run and per-run AUC differences."""
    comp = doc.get("comparison")
    if comp is None:
        return
    runs = doc.get("runs") if isinstance(doc.get("runs"), dict) else {}
    _need(isinstance(comp, dict), "comparison", "an object (task -> comparison)", comp)
    for task, c in comp.items():
        where = f"comparison.{task}"
        _need(isinstance(c, dict) and c.get("reference") in runs, f"{where}.reference", "the name of an evaluated run", c)
        _need(isinstance(c.get("runs"), dict) and set(c["runs"]) <= set(runs) - {c["reference"]}, f"{where}.runs",
              "an object keyed by the other runs", c.get("runs"))
        for run, d in c["runs"].items():
            _need(isinstance(d, dict) and _is_scalar(d.get("auc_diff")), f"{where}.runs.{run}.auc_diff", "a number or null", d)
            ci = d.get("auc_diff_ci95")
            _need(ci is None or (isinstance(ci, list) and len(ci) == 2 and all(_is_scalar(v) for v in ci)),
                  f"{where}.runs.{run}.auc_diff_ci95", "[low, high]", ci)


def validate_document(doc: Any) -> None:
    """Check a ``metrics.json`` document against schema version 1.

    Raises:
        DataError: naming the first key whose value does not fit, and what was expected.
    """
    _need(isinstance(doc, dict), "the document", "a JSON object", type(doc).__name__)
    required = ("schema_version", "graphevent_version", "created", "dataset", "checkpoint", "bootstrap", "runs", "run_info")
    missing = [k for k in required if k not in doc]
    _need(not missing, "the document", f"keys {', '.join(required)}", f"missing {', '.join(missing)}")
    _need(doc["schema_version"] == SCHEMA_VERSION, "schema_version", str(SCHEMA_VERSION), doc["schema_version"])
    _validate_comparison(doc)
    ds = doc["dataset"]
    _need(isinstance(ds, dict), "dataset", "an object", ds)
    for key, kind in (("path", str), ("split", str), ("classes", list), ("targets", list), ("n_events", int)):
        _need(isinstance(ds.get(key), kind), f"dataset.{key}", kind.__name__, ds.get(key))
    _need(doc["checkpoint"] in ("best", "last"), "checkpoint", "'best' or 'last'", doc["checkpoint"])
    bs = doc["bootstrap"]
    _need(isinstance(bs, dict) and isinstance(bs.get("resamples"), int) and isinstance(bs.get("seed"), int),
          "bootstrap", "an object with integer resamples and seed", bs)
    _need(isinstance(bs.get("confidence"), float) and 0 < bs["confidence"] < 1, "bootstrap.confidence", "a number in (0, 1)", bs.get("confidence"))
    runs, info = doc["runs"], doc["run_info"]
    _need(isinstance(runs, dict) and runs, "runs", "a non-empty object (run -> task -> metric -> value)", runs)
    _need(isinstance(info, dict) and set(info) == set(runs), "run_info", f"one entry per run ({', '.join(runs)})", list(info) if isinstance(info, dict) else info)
    for run, tasks in runs.items():
        _need(isinstance(tasks, dict) and tasks, f"runs.{run}", "a non-empty object (task -> metrics)", tasks)
        ri = info[run]
        _need(isinstance(ri, dict), f"run_info.{run}", "an object", ri)
        for key, kind in (("run_dir", str), ("checkpoint_file", str), ("model", str), ("stage", str), ("n_events", int), ("tasks", dict)):
            _need(isinstance(ri.get(key), kind), f"run_info.{run}.{key}", kind.__name__, ri.get(key))
        _need(ri.get("epoch") is None or isinstance(ri["epoch"], int), f"run_info.{run}.epoch", "an integer or null", ri.get("epoch"))
        _need(set(ri["tasks"]) == set(tasks), f"run_info.{run}.tasks", f"the tasks of runs.{run} ({', '.join(tasks)})", list(ri["tasks"]))
        for task, metrics in tasks.items():
            where = f"runs.{run}.{task}"
            tinfo = ri["tasks"][task]
            _need(isinstance(tinfo, dict) and tinfo.get("kind") in TASK_KINDS, f"run_info.{run}.tasks.{task}.kind", f"one of {', '.join(TASK_KINDS)}", tinfo)
            headline = tinfo.get("headline")
            _need(isinstance(headline, list) and all(h in metrics for h in headline), f"run_info.{run}.tasks.{task}.headline",
                  f"a list of metric names of {where}", headline)
            _need(isinstance(metrics, dict) and metrics, where, "a non-empty object (metric -> value)", metrics)
            for name, value in metrics.items():
                w = f"{where}.{name}"
                if name.endswith("_ci95"):
                    _need(name[: -len("_ci95")] in metrics, w, f"an interval of an existing metric {name[:-5]!r}", value)
                    _need(isinstance(value, list) and len(value) == 2 and all(_is_scalar(v) for v in value), w,
                          "[low, high] (numbers, 'inf' or null)", value)
                    lo, hi = (decode_value(v) for v in value)
                    _need(lo is None or hi is None or lo <= hi, w, "low <= high", value)
                elif name == "confusion_matrix":
                    ok = isinstance(value, list) and all(
                        isinstance(row, list) and len(row) == len(value) and all(isinstance(c, int) and c >= 0 for c in row)
                        for row in value
                    )
                    _need(ok, w, "a square list of lists of non-negative integers", value)
                else:
                    _need(_is_scalar(value), w, "a number, 'inf' or null", value)
