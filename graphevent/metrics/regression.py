"""Regression metrics of one target (e.g. the jet mass ``m0`` or ``pt``), in physical units.

* ``mae``: mean |pred - true|; ``rmse``: sqrt(mean (pred - true)^2);
* ``bias``: mean (pred - true) (positive = overestimate);
* ``resolution``: standard deviation of (pred - true) / true over events with true != 0
  (a fraction; 0.1 = 10 %);
* ``resolution_constant``: the same for a constant prediction, the mean true value of the
  events: the baseline. A target generated in a narrow window (the shipped sample's pT,
  500-550 GeV) has a small resolution for any model; only a resolution clearly below this
  baseline says the model learned something about the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from graphevent.config.tasks import get_task_type, target_unit
from graphevent.metrics.base import EventBuffer, TaskMetrics, register_task_metrics, with_intervals
from graphevent.metrics.bootstrap import bootstrap, weighted_regression
from graphevent.metrics.streaming import RelativeResolution


class _Bias(MeanMetric):
    """Mean of ``pred - true`` (a MeanMetric with a two-argument update)."""

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:  # type: ignore[override]
        super().update(pred - true)


@register_task_metrics("regression")
class RegressionMetrics(TaskMetrics):
    """Streaming metrics of one regression head.

    Args:
        target: name of the regressed quantity (a ``DatasetInfo.targets`` entry).
        column: predictions-file column name of the output (default ``pred_<target>``).
        index: column of ``batch.targets`` holding the true values (for :meth:`update_batch`).

    Shapes:
        ``update(pred: (B,), true: (B,))``
    """

    kind = "regression"
    headline = ("mae", "rmse", "bias", "resolution", "resolution_constant")

    def __init__(self, target: str, column: str | None = None, index: int | None = None) -> None:
        self.target = target
        self.index = index
        self.column = column or f"pred_{target}"
        self.metrics = MetricCollection({
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "bias": _Bias(),
            "resolution": RelativeResolution(),
        }, compute_groups=False)
        self.pred = EventBuffer(np.float32)
        self.true = EventBuffer(np.float32)

    @classmethod
    def for_task(cls, task: Any, classes: Sequence[str], targets: Sequence[str], signal: int | str | None = None) -> "RegressionMetrics":
        return cls(task.target, column=f"pred_{task.name}", index=list(targets).index(task.target))

    def update_batch(self, pred: torch.Tensor, batch: Any) -> None:
        if self.index is None:
            raise ValueError(f"{type(self).__name__}({self.target!r}): no target column index for a batch update")
        self.update(pred, batch.targets.view(pred.shape[0], -1)[:, self.index])

    def validation_values(self) -> dict[str, float]:
        """``mae`` in physical units."""
        return {"mae": float(self.metrics["mae"].compute())}

    def figures(self, task: str, run: str, out: Path, stem: str) -> list[tuple[str, Path]]:
        from graphevent.metrics import plots

        what = task if task == self.target else f"{task} ({self.target})"
        fig = plots.response_figure(self.pred.array(), self.true.array(), self.target, f"{run}: {what}")
        return [(f"{run}: {task} response", plots.save_figure(fig, out / f"response-{stem}-{task}.png"))]

    def to(self, device: torch.device | str) -> "RegressionMetrics":
        self.metrics = self.metrics.to(device)
        return self

    def buffers(self) -> dict[str, EventBuffer]:
        return {"pred": self.pred, "true": self.true}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        pred = pred.detach().float().reshape(-1)
        true = true.detach().float().reshape(-1)
        if pred.shape != true.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and true {tuple(true.shape)} differ")
        self.metrics.update(pred, true)
        self.pred.append(pred)
        self.true.append(true)

    def compute(self, resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
        computed = self.metrics.compute()
        values = {name: float(computed[name]) for name in self.headline if name in computed}
        pred, true = self.pred.array(), self.true.array()
        values["resolution_constant"] = float(weighted_regression(pred, true)["resolution_constant"][0])
        intervals = bootstrap(pred.size, lambda w: weighted_regression(pred, true, w), resamples, seed, confidence)
        return with_intervals(values, intervals)

    def columns(self) -> dict[str, np.ndarray]:
        return {self.column: self.pred.array()}

    def describe(self) -> dict[str, Any]:
        """Kind and target, and ``units`` of the metrics in the target's unit (``{"mae": "GeV"}``;
        absent when the target's unit is unknown)."""
        unit = target_unit(self.target)
        units = {name: unit for name in get_task_type("regression").target_unit_metrics} if unit else {}
        return {"kind": "regression", "target": self.target, **({"units": units} if units else {})}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, events={len(self.pred)})"
