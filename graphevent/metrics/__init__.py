"""Trustworthy evaluation metrics, their bootstrap intervals, tables and plots.

* :mod:`~graphevent.metrics.roc` -- ROC, AUC, background rejection (numpy, weighted rows);
* :mod:`~graphevent.metrics.bootstrap` -- resampling counts and percentile intervals;
* :mod:`~graphevent.metrics.classification`, :mod:`~graphevent.metrics.regression`,
  :mod:`~graphevent.metrics.reconstruction` -- streaming per-task metrics (torchmetrics state
  plus compact per-event arrays);
* :mod:`~graphevent.metrics.report` -- ``metrics.json`` schema, rich/markdown/csv tables;
* :mod:`~graphevent.metrics.plots` -- ROC, score, response and training-curve figures.
"""

from graphevent.metrics.base import EventBuffer, TaskMetrics
from graphevent.metrics.classification import ClassificationMetrics
from graphevent.metrics.reconstruction import ReconstructionMetrics
from graphevent.metrics.regression import RegressionMetrics

__all__ = ["ClassificationMetrics", "EventBuffer", "ReconstructionMetrics", "RegressionMetrics", "TaskMetrics"]
