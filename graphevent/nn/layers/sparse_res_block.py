"""Residual block of submanifold sparse convolutions."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.layers.submanifold_conv import SubmanifoldConv2d


class SparseResBlock(nn.Module):
    r"""Basic ResNet block (two convolutions and a shortcut) on the active sites.

    .. math::
        \mathbf{y} = \mathrm{act}\big(\mathbf{x} + \mathrm{BN}(\mathrm{SC}_2(\mathrm{act}(\mathrm{BN}(\mathrm{SC}_1(\mathbf{x}))))))\big)

    ``SC`` are :class:`SubmanifoldConv2d` without bias; ``BN`` is ``BatchNorm1d`` over the
    active sites of the batch (statistics of occupied pixels only, as in sparse
    convolutional networks, arXiv:1706.01307; He et al., arXiv:1512.03385 for the block).

    Args:
        channels: ``C`` (input and output).
        kernel_size: odd ``k`` (default 3).
        act: activation class (default ``nn.ReLU``).
        algorithm: the convolutions' ``gather`` or ``rules`` (:class:`SubmanifoldConv2d`).

    Shapes:
        x: (S, C), lattice: S sites -> (S, C)
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        act: type[nn.Module] = nn.ReLU,
        algorithm: Literal["gather", "rules"] = "rules",
    ) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.conv1 = SubmanifoldConv2d(channels, channels, kernel_size, bias=False, algorithm=algorithm)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = SubmanifoldConv2d(channels, channels, kernel_size, bias=False, algorithm=algorithm)
        self.bn2 = nn.BatchNorm1d(channels)
        self.act = act()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.conv1, self.bn1, self.conv2, self.bn2):
            m.reset_parameters()

    def forward(self, x: Tensor, lattice: SparseLattice) -> Tensor:
        h = self.act(self.bn1(self.conv1(x, lattice)))
        return self.act(x + self.bn2(self.conv2(h, lattice)))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, kernel_size={self.kernel_size})"
