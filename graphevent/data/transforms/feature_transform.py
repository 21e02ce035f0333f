"""Per-channel scale and monotone transform of node values."""

from __future__ import annotations

import numpy as np


class ScaleTransform:
    """``x -> transform(x * scale)`` column by column.

    Args:
        scales: per-column multiplicative scale.
        transforms: per-column ``"none"`` or ``"log1p"``.
        columns: which columns of the node values the channels map to (per_channel mode
            has one shared value column; its channel is the one-hot column).

    Shapes:
        values: (P, F) -> (P, F) float32.
    """

    def __init__(self, scales, transforms, columns=None) -> None:
        self.scales = np.asarray(scales, dtype=np.float32)
        self.transforms = list(transforms)
        self.columns = list(range(len(self.scales))) if columns is None else list(columns)

    def __repr__(self) -> str:
        return f"ScaleTransform(scales={self.scales.tolist()}, transforms={self.transforms})"

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out = values.astype(np.float32, copy=True)
        for col, s, t in zip(self.columns, self.scales, self.transforms):
            out[:, col] *= s
            if t == "log1p":
                np.log1p(out[:, col], out=out[:, col])
        return out


class PerChannelValueTransform:
    """per_channel mode: scale/transform the single value column by each node's channel.

    Shapes:
        values: (P, C + 1) with one-hot channel columns and the value last -> same shape.
    """

    def __init__(self, scales, transforms) -> None:
        self.scales = np.asarray(scales, dtype=np.float32)
        self.transforms = list(transforms)

    def __repr__(self) -> str:
        return f"PerChannelValueTransform(scales={self.scales.tolist()}, transforms={self.transforms})"

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out = values.astype(np.float32, copy=True)
        c = len(self.scales)
        ch = out[:, :c].argmax(1)
        v = out[:, c] * self.scales[ch]
        log = np.array([t == "log1p" for t in self.transforms])[ch]
        v[log] = np.log1p(v[log])
        out[:, c] = v
        return out
