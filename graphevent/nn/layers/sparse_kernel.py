"""The weights every sparse convolution holds: one matrix per kernel offset and a bias."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SparseKernel(nn.Module):
    r"""Base of the sparse convolutions: ``weight`` (one ``C_in x C_out`` matrix per kernel
    offset, laid out as the subclass multiplies it) and an optional ``bias`` (C_out,), both
    drawn from :math:`U(-1/\sqrt{\mathrm{fan\_in}}, 1/\sqrt{\mathrm{fan\_in}})` as ``nn.Conv2d``'s.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        shape: shape of ``weight``.
        fan_in: inputs summed into one output value.
        bias: add a learned bias.
    """

    def __init__(self, in_channels: int, out_channels: int, shape: tuple[int, ...], fan_in: int, bias: bool) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.fan_in = fan_in
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def add_bias(self, out: Tensor) -> Tensor:
        """``out`` (S, C_out) plus the bias (in ``out``'s dtype), or ``out`` without one."""
        return out if self.bias is None else out + self.bias.to(out.dtype)
