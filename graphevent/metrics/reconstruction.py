"""Autoencoder metrics: reconstruction error per node-feature channel and the set distance.

* ``recon_error_<feature>``: mean over events of the model's per-event, per-channel
  reconstruction error (``predict(batch)["recon_error"]``, shape ``(B, F)``);
  ``recon_error_mean`` averages the channels.
* ``set_distance``: the model's pretraining objective (``loss(batch, "pretrain")``, the set
  distance it was trained to minimise), averaged over events. It is known per batch only,
  so its bootstrap resamples whole batches, and gives no interval with fewer than
  :data:`MIN_BATCHES` batches (a handful of batches cannot show the spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import MeanMetric

from graphevent.metrics.base import EventBuffer, TaskMetrics, with_intervals
from graphevent.metrics.bootstrap import bootstrap
from graphevent.metrics.streaming import ColumnMean

#: Fewest batches for a bootstrap interval of ``set_distance``.
MIN_BATCHES = 10


class ReconstructionMetrics(TaskMetrics):
    """Streaming reconstruction metrics of an autoencoder.

    Args:
        features: node-feature (channel) names, the columns of ``recon_error``.

    Shapes:
        ``update(recon_error: (B, F), set_distance: () | None)``
    """

    kind = "reconstruction"
    headline = ("recon_error_mean", "set_distance")

    def __init__(self, features: Sequence[str]) -> None:
        self.features = list(features)
        self.per_channel = ColumnMean(len(self.features))
        self.distance = MeanMetric()
        self.errors = EventBuffer(np.float32)
        self.batch_distance = EventBuffer(np.float64)
        self.batch_size = EventBuffer(np.float64)

    def to(self, device: torch.device | str) -> "ReconstructionMetrics":
        self.per_channel = self.per_channel.to(device)
        self.distance = self.distance.to(device)
        return self

    def buffers(self) -> dict[str, EventBuffer]:
        return {"errors": self.errors, "batch_distance": self.batch_distance, "batch_size": self.batch_size}

    def __len__(self) -> int:
        return len(self.errors)

    @torch.no_grad()
    def update(self, recon_error: torch.Tensor, set_distance: torch.Tensor | float | None = None) -> None:
        recon_error = recon_error.detach().float()
        if recon_error.ndim != 2 or recon_error.shape[1] != len(self.features):
            raise ValueError(f"recon_error {tuple(recon_error.shape)}: expected (B, {len(self.features)})")
        n = recon_error.shape[0]
        self.per_channel.update(recon_error)
        self.errors.append(recon_error)
        if set_distance is not None:
            d = torch.as_tensor(set_distance, dtype=torch.float64).detach().reshape(())
            self.distance.update(d.to(self.distance.device), weight=n)
            self.batch_distance.append(d.reshape(1))
            self.batch_size.append(np.array([n], dtype=np.float64))

    def compute(self, resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
        per_channel = np.atleast_1d(self.per_channel.compute().cpu().numpy())  # torchmetrics squeezes (1,)
        values: dict[str, Any] = {"recon_error_mean": float(per_channel.mean())}
        values.update({f"recon_error_{f}": float(v) for f, v in zip(self.features, per_channel)})
        errors = self.errors.array().astype(np.float64)
        intervals = bootstrap(
            len(errors),
            lambda w: dict(
                recon_error_mean=(w @ errors.mean(axis=1)) / w.sum(axis=1),
                **{f"recon_error_{f}": (w @ errors[:, i]) / w.sum(axis=1) for i, f in enumerate(self.features)},
            ),
            resamples, seed, confidence,
        )
        if len(self.batch_distance):
            values["set_distance"] = float(self.distance.compute())
            d, n = self.batch_distance.array(), self.batch_size.array()
            if len(d) >= MIN_BATCHES:
                intervals.update(bootstrap(len(d), lambda w: {"set_distance": (w @ (d * n)) / (w @ n)}, resamples, seed + 1, confidence))
        return with_intervals(values, intervals)

    def columns(self) -> dict[str, np.ndarray]:
        errors = self.errors.array()
        return {f"recon_error_{f}": errors[:, i] for i, f in enumerate(self.features)}

    @classmethod
    def comparison_figures(cls, task, runs, out, definitions):
        """Mean reconstruction error per channel, every run side by side."""
        from graphevent.metrics import plots

        per_run = {run: {f: (vals[f"recon_error_{f}"], vals.get(f"recon_error_{f}_ci95")) for f in m.features}
                   for run, vals, m in runs}
        labels = {run: definitions[run] for run, _, _ in runs if run in definitions}
        fig = plots.reconstruction_figure(per_run, "reconstruction error per channel", labels)
        return [("reconstruction error per channel", plots.save_figure(fig, out / f"{task}.png"))]

    def describe(self) -> dict[str, Any]:
        return {"kind": "reconstruction", "features": self.features}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(features={self.features}, events={len(self.errors)})"
