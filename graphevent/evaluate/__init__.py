"""Evaluation of trained runs: streaming inference, metrics with intervals, predictions, explain.

:func:`evaluate` is the one call behind ``graphevent eval``; see :mod:`graphevent.metrics`
for the metric definitions and ``docs/metrics_schema.md`` for ``metrics.json``.
"""

from graphevent.evaluate.options import EvalOptions
from graphevent.evaluate.runner import EvalResult, evaluate

__all__ = ["EvalOptions", "EvalResult", "evaluate"]
