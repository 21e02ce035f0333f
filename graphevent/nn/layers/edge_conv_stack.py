"""Dynamic EdgeConv: a stack of EdgeConv blocks whose later blocks find their neighbours in
feature space, as in DGCNN and ParticleNet."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from graphevent.nn.layers.edge_conv_block import EdgeConvBlock
from graphevent.nn.layers.knn import knn_graph


class EdgeConvStack(nn.ModuleList):
    r"""EdgeConv blocks, the first on a given graph, each later one on the kNN graph of the
    previous block's output (Wang et al., arXiv:1801.07829; Qu & Gouskos, arXiv:1902.08570).

    A :class:`~torch.nn.ModuleList` of :class:`EdgeConvBlock`, so its parameters keep the
    names ``<attr>.<i>.*`` of a plain list of blocks.

    Args:
        in_channels: node feature size ``F_in``.
        channels: each block's edge-MLP sizes, e.g. ``((64, 64, 64), (128, 128, 128))``.
        k: neighbours of the feature-space graphs of blocks 2, 3, ...

    Shapes:
        h: (N, F_in), edge_index: (2, E) (block 1's graph), batch: (N,)
        -> one (N, channels[i][-1]) tensor per block
    """

    def __init__(self, in_channels: int, channels: Sequence[Sequence[int]], k: int) -> None:
        super().__init__()
        size = in_channels
        for ch in channels:
            self.append(EdgeConvBlock(size, ch))
            size = ch[-1]
        self.k = k
        self.out_channels = size

    def forward(self, h: Tensor, edge_index: Tensor, batch: Tensor, num_events: int) -> list[Tensor]:  # type: ignore[override]
        outs = []
        for i, block in enumerate(self):
            h = block(h, edge_index if i == 0 else knn_graph(h, batch, self.k, num_events))
            outs.append(h)
        return outs

    def extra_repr(self) -> str:
        return f"k={self.k}"
