"""Evaluation of trained runs: streaming inference, metrics with intervals, predictions, explain.

:func:`evaluate` is the one call behind ``graphevent eval``; see :mod:`graphevent.metrics`
for the metric definitions and ``docs/metrics_schema.md`` for ``metrics.json``.
"""

from __future__ import annotations

from typing import Any

from graphevent.evaluate.options import EvalOptions, check_run_dirs, recorded_dataset


def evaluate(run_dirs, data_dir, options: EvalOptions = EvalOptions(), out_dir=None, progress: Any = None):
    """:func:`graphevent.evaluate.runner.evaluate`, after the checks that need no torch
    (options, run and dataset directories, output directory), so a wrong argument fails
    in about a second instead of after torch's import. ``data_dir`` ``None``: the dataset the
    runs were trained on (:func:`recorded_dataset`)."""
    from graphevent.data.info import load_manifest

    check_run_dirs(run_dirs, options)
    if data_dir is None:
        data_dir = recorded_dataset(run_dirs)
    load_manifest(data_dir)  # DataError: missing or unfinished dataset
    from graphevent.evaluate.runner import evaluate as run_evaluation

    return run_evaluation(run_dirs, data_dir, options, out_dir, progress)


def __getattr__(name: str):
    if name == "EvalResult":  # the runner (and torch) only when asked for
        from graphevent.evaluate.runner import EvalResult

        return EvalResult
    raise AttributeError(name)


__all__ = ["EvalOptions", "EvalResult", "evaluate"]
