"""Dynamic EdgeConv: a stack of EdgeConv blocks whose later blocks find their neighbours in
feature space, as in DGCNN and ParticleNet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Tuple

from torch import Tensor, nn

from graphevent.nn.layers.dense_knn import dense_knn
from graphevent.nn.layers.edge_conv_block import EdgeConvBlock


class EdgeConvStack(nn.ModuleList):
    r"""EdgeConv blocks, the first on given neighbours, each later one on the kNN of the
    previous block's output (Wang et al., arXiv:1801.07829; Qu & Gouskos, arXiv:1902.08570).

    A :class:`~torch.nn.ModuleList` of :class:`EdgeConvBlock`, so its parameters keep the
    names ``<attr>.<i>.*`` of a plain list of blocks. Padded events, one form for training
    and export; ``onnx`` (set while exporting to ONNX) picks :func:`dense_knn`'s ONNX form.

    Args:
        in_channels: node feature size ``F_in``.
        channels: each block's edge-MLP sizes, e.g. ``((64, 64, 64), (128, 128, 128))``.
        k: neighbours of every block (block 1 in (eta, phi), the others in feature space).

    Shapes:
        h: (B, N, F_in), positions: (B, N, 2) (block 1's neighbours are the nearest in them),
        mask: (B, N), neighbours: block 1's (idx, valid) (B, N, k) if known -> one (B, N,
        channels[i][-1]) tensor per block
    """

    def __init__(self, in_channels: int, channels: Sequence[Sequence[int]], k: int) -> None:
        super().__init__()
        size = in_channels
        for ch in channels:
            self.append(EdgeConvBlock(size, ch))
            size = ch[-1]
        self.k = k
        self.onnx = False
        self.out_channels = size

    def forward(  # type: ignore[override]
        self, h: Tensor, positions: Tensor, mask: Tensor, pixel_size: Optional[Tuple[float, float]] = None,
        periods: Optional[Tuple[float, float]] = None, neighbours: Optional[Tuple[Tensor, Tensor]] = None,
    ) -> list[Tensor]:
        # block 1: the (eta, phi) neighbours, the dataset's graph (pixel_size, periods: DatasetInfo's),
        # or the stored graph's slots when given (nn.batch.stored_neighbours: the same neighbours)
        if neighbours is None:
            idx, valid = dense_knn(positions, mask, self.k, True, self.onnx, pixel_size, periods)
        else:
            idx, valid = neighbours
        outs: list[Tensor] = []
        first = True
        nodes: Optional[Tensor] = mask.reshape(-1).nonzero().squeeze(1) if self.training else None  # once for all blocks
        for block in self:
            if not first:
                # training: float32 distances (a near tie may go either way); eval and export: exact
                idx, valid = dense_knn(h, mask, self.k, False, self.onnx, exact=not self.training)
            h = block(h, idx, valid, mask, nodes)
            outs.append(h)
            first = False
        return outs

    def extra_repr(self) -> str:
        return f"k={self.k}"
