"""Submanifold sparse convolution: a k x k convolution evaluated only at the active sites."""

from __future__ import annotations

import math
from typing import Literal

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
    every layer there).

    Two ways to compute the same sum (equal up to rounding):

    * ``gather`` (default): gather all ``k * k`` neighbour rows of every site (zeros where no
      site is) and one ``(S, k*k*C_in) x (k*k*C_in, C_out)`` product: 3 operators, no host sync,
      but the work of a dense neighbourhood;
    * ``rules``: the centre offset's product over all sites plus, per other offset, a product
      over the active pairs only, added with ``index_add`` (the rule books of SparseConvNet):
      work proportional to the active pairs, ``3 (k*k - 1)`` more operators and two host syncs
      per lattice to build the pairs. Faster when few neighbours are active (measured on CPU in
      ``docs/models.md``).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: odd ``k`` (default 3).
        bias: add a learned bias (default ``True``).
        algorithm: ``gather`` or ``rules`` (default ``gather``).

    Shapes:
        x: (S, C_in) features of the lattice's sites, lattice: S sites -> (S, C_out)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        algorithm: Literal["gather", "rules"] = "gather",
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: {kernel_size}; expected an odd size >= 1")
        if algorithm not in ("gather", "rules"):
            raise ValueError(f"algorithm: {algorithm!r}; expected 'gather' or 'rules'")
        self.algorithm = algorithm
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
        if self.algorithm == "rules":
            return self._forward_rules(x, lattice)
        nbr = lattice.neighbours(self.kernel_size)  # (S, k * k), S = "no site"
        padded = torch.cat([x, x.new_zeros(1, x.size(1))])
        gathered = padded.index_select(0, nbr.view(-1)).view(nbr.size(0), nbr.size(1) * x.size(1))  # (S, k * k * C_in)
        out = gathered @ self.weight.to(x.dtype).flatten(0, 1)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def _forward_rules(self, x: Tensor, lattice: SparseLattice) -> Tensor:
        weight = self.weight.to(x.dtype)
        out = x @ weight[self.kernel_size**2 // 2]  # the centre: every site is its own neighbour
        for offset, dst, src in lattice.rules(self.kernel_size):
            out.index_add_(0, dst, x.index_select(0, src) @ weight[offset])
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def __repr__(self) -> str:
        extra = "" if self.algorithm == "gather" else f", algorithm={self.algorithm!r}"
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extra})"
