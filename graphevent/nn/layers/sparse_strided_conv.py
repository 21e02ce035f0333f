"""Strided sparse convolution: active sites to the coarser lattice (downsampling)."""

from __future__ import annotations

from torch import Tensor

from graphevent.nn.layers.sparse_kernel import SparseKernel
from graphevent.nn.layers.sparse_lattice import SparseLattice


class SparseStridedConv2d(SparseKernel):
    r"""Sparse convolution with kernel ``s x s`` and stride ``s``: one site per occupied ``s x s`` cell.

    .. math::
        \mathbf{y}_U = \mathbf{b} + \sum_{u:\ \lfloor u / s \rfloor = U} W_{u \bmod s}^\top \mathbf{x}_u

    The output sites are the cells holding at least one active site
    (:meth:`SparseLattice.coarsen`, site ``(floor(row / s), floor(col / s))``), the
    downsampling of sparse convolutional networks (Graham et al., arXiv:1711.10275). At
    those sites it equals a dense ``conv2d(kernel_size=s, stride=s)`` of the image that is
    zero outside the active sites.

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        stride: ``s`` (default 2).
        bias: add a learned bias (default ``True``).

    Shapes:
        x: (S, C_in), lattice: S sites -> (S_c, C_out) and the coarse lattice (S_c sites)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, bias: bool = True) -> None:
        if stride < 2:
            raise ValueError(f"stride: {stride}; expected >= 2")
        super().__init__(in_channels, out_channels, (stride * stride, in_channels, out_channels), in_channels * stride**2, bias)
        self.stride = stride

    def forward(self, x: Tensor, lattice: SparseLattice) -> tuple[Tensor, SparseLattice]:
        coarse, parent, offset = lattice.coarsen(self.stride)
        ss = self.stride * self.stride
        # each (parent, offset) holds at most one site: place the sites in their cells, one product
        cells = x.new_zeros(coarse.num_sites * ss, x.size(1)).index_copy(0, parent * ss + offset, x)
        out = cells.view(coarse.num_sites, ss * x.size(1)) @ self.weight.to(x.dtype).flatten(0, 1)
        return self.add_bias(out), coarse

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, stride={self.stride})"
