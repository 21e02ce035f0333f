"""Fourier features of (eta, phi) positions."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FourierPosition(nn.Module):
    """``[p, sin(2^l * pi * p / scale), cos(2^l * pi * p / scale)]`` for l < ``num_freqs``.

    Lets linear layers resolve positions finer than a smooth function of (eta, phi)
    would (Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions",
    arXiv:2006.10739). No parameters.

    Args:
        in_channels: coordinates per node (2 for (eta, phi)).
        num_freqs: octaves (default 4).
        scale: coordinate range the lowest frequency spans (default 1.5, above the
            ~+-1.1 range of jet images).

    Shapes:
        pos: (N, in_channels) -> (N, in_channels * (1 + 2 * num_freqs))
    """

    def __init__(self, in_channels: int = 2, num_freqs: int = 4, scale: float = 1.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_freqs = num_freqs
        self.scale = scale
        freqs = (2.0 ** torch.arange(num_freqs, dtype=torch.float32)) * math.pi / scale
        self.register_buffer("freqs", freqs, persistent=False)

    @property
    def out_channels(self) -> int:
        return self.in_channels * (1 + 2 * self.num_freqs)

    def forward(self, pos: Tensor) -> Tensor:
        ang = pos[..., None] * self.freqs  # (N, in, L)
        return torch.cat([pos, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, num_freqs={self.num_freqs}, scale={self.scale})"
