"""Small torchmetrics ``Metric`` classes that torchmetrics does not ship.

Their states are running sums (``dist_reduce_fx="sum"``, float64), so memory is constant in
the number of events and DDP synchronisation is torchmetrics' own.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class RelativeResolution(Metric):
    """Standard deviation of ``(pred - true) / true`` over events with ``true != 0``.

    Population standard deviation (ddof = 0) from running sums of r and r^2, in float64.

    Shapes:
        ``update(pred: (B,), true: (B,))`` -> ``compute(): ()``
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sum_r", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_r2", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        pred, true = pred.double().view(-1), true.double().view(-1)
        ok = true != 0
        r = (pred[ok] - true[ok]) / true[ok]
        self.sum_r += r.sum()
        self.sum_r2 += (r * r).sum()
        self.count += ok.sum()

    def compute(self) -> torch.Tensor:
        mean = self.sum_r / self.count
        return torch.sqrt(torch.clamp(self.sum_r2 / self.count - mean * mean, min=0.0))


class ColumnMean(Metric):
    """Mean of each column over all rows seen (e.g. reconstruction error per channel).

    Shapes:
        ``update(values: (B, F))`` -> ``compute(): (F,)``
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_columns: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_columns = num_columns
        self.add_state("total", default=torch.zeros(num_columns, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        values = values.double().reshape(-1, self.num_columns)
        self.total += values.sum(dim=0)
        self.count += values.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count

    def extra_repr(self) -> str:
        return f"num_columns={self.num_columns}"
