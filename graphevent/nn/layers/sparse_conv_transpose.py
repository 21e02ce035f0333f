"""Sparse transposed convolution: coarse sites back to finer sites (upsampling)."""

from __future__ import annotations

from torch import Tensor

from graphevent.nn.layers.sparse_kernel import SparseKernel
from graphevent.nn.layers.sparse_lattice import SparseLattice


class SparseConvTranspose2d(SparseKernel):
    r"""Transposed sparse convolution with kernel ``s x s`` and stride ``s``.

    .. math::
        \mathbf{y}_u = \mathbf{b} + W_{u \bmod s}^\top \mathbf{x}_{\lfloor u / s \rfloor}

    Evaluated either at given finer sites (each with its parent and offset, as returned by
    :meth:`SparseLattice.coarsen`, e.g. the encoder's stored sites) or at all ``s * s``
    children of every coarse site (generative upsampling, whose candidates a decoder then
    prunes: Gwak et al., "Generative Sparse Detection Networks", arXiv:2006.12356). At
    those sites it equals a dense ``conv_transpose2d(kernel_size=s, stride=s)`` of the coarse image.

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        stride: ``s`` (default 2).
        bias: add a learned bias (default ``True``).

    Shapes:
        x: (S_c, C_in), lattice: S_c sites; parent, offset: (S,) -> (S, C_out);
        without parent/offset -> (S_c * s * s, C_out), children in :meth:`SparseLattice.children_keys` order
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, bias: bool = True) -> None:
        if stride < 2:
            raise ValueError(f"stride: {stride}; expected >= 2")
        super().__init__(in_channels, out_channels, (in_channels, stride * stride, out_channels), in_channels, bias)
        self.stride = stride

    def forward(self, x: Tensor, lattice: SparseLattice, parent: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
        ss = self.stride * self.stride
        out = (x @ self.weight.to(x.dtype).flatten(1)).view(lattice.num_sites * ss, self.out_channels)
        if parent is not None:
            out = out[parent * ss + offset]
        return self.add_bias(out)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, stride={self.stride})"
