"""Submanifold sparse convolution: a k x k convolution evaluated only at the active sites."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from graphevent.nn.layers.sparse_lattice import SparseLattice


class SubmanifoldConv2d(nn.Module):
    r"""Submanifold sparse 2-D convolution (Graham & van der Maaten, arXiv:1706.01307).

    .. math::
        \mathbf{y}_u = \mathbf{b} + \sum_{\delta \in \{-p..p\}^2,\ u + \delta\ \text{active}}
        W_\delta^\top \mathbf{x}_{u + \delta},\qquad p = \lfloor k / 2 \rfloor

    One weight matrix per kernel offset; outputs exist only at the input's active sites, so
    sparsity does not dilate with depth. At those sites this equals a dense
    ``conv2d(padding=k // 2)`` of the image that is zero outside the active sites. The
    neighbour table comes from the :class:`SparseLattice` (built once per level, shared by
    every layer there); the layer is one gather and one matrix product.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: odd ``k`` (default 3).
        bias: add a learned bias (default ``True``).

    Shapes:
        x: (S, C_in) features of the lattice's sites, lattice: S sites -> (S, C_out)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: {kernel_size}; expected an odd size >= 1")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(kernel_size * kernel_size, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)  # as nn.Conv2d
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, lattice: SparseLattice) -> Tensor:
        nbr = lattice.neighbours(self.kernel_size)  # (S, k * k), S = "no site"
        padded = torch.cat([x, x.new_zeros(1, x.size(1))])
        gathered = padded.index_select(0, nbr.view(-1)).view(nbr.size(0), nbr.size(1) * x.size(1))  # (S, k * k * C_in)
        out = gathered @ self.weight.to(x.dtype).flatten(0, 1)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"
