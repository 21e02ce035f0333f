"""Fixed standardisation of node features and regression targets from dataset statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


class Standardize(nn.Module):
    """``(x - mean) / std`` per column with statistics stored as buffers (not trained).

    Statistics come from the dataset manifest (``DatasetInfo.feature_stats`` or
    ``target_stats``); columns without statistics pass through (mean 0, std 1). Buffers
    travel with the model to any device and into its ``state_dict``.

    Args:
        names: column names, in column order.
        stats: ``{name: {"mean": m, "std": s}}``; missing names get (0, 1).
        eps: floor on the standard deviation.

    Shapes:
        x: (*, len(names)) -> (*, len(names)); ``inverse`` maps back.
    """

    def __init__(self, names: Sequence[str], stats: Mapping[str, Mapping[str, float]] | None = None, eps: float = 1e-6) -> None:
        super().__init__()
        stats = stats or {}
        self.names = list(names)
        mean = [float(stats.get(n, {}).get("mean", 0.0)) for n in self.names]
        std = [max(float(stats.get(n, {}).get("std", 1.0)), eps) for n in self.names]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.names})"
