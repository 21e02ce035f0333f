"""EdgeConv block as used by DGCNN and ParticleNet, on padded events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from graphevent.nn.layers.dense_knn import gather_nodes


class EdgeConvBlock(nn.Module):
    r"""EdgeConv block: an edge MLP on ``[x_i, x_j - x_i]``, mean over neighbours, shortcut.

    .. math::
        \mathbf{x}'_i = \mathrm{act}\Big(\mathrm{sc}(\mathbf{x}_i) + \frac{1}{|\mathcal{N}(i)|}
        \sum_{j \in \mathcal{N}(i)} h_{\Theta}\big([\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i]\big)\Big)

    ``h`` is ``len(channels)`` layers of ``Linear (no bias) -> BatchNorm -> act`` and ``sc``
    is ``Linear -> BatchNorm`` (identity when the sizes match), following ParticleNet
    (Qu & Gouskos, arXiv:1902.08570) and DGCNN (Wang et al., arXiv:1801.07829). Which
    neighbours it takes is the caller's choice: the (eta, phi) kNN of the data, or a kNN
    recomputed in feature space ("dynamic" EdgeConv).

    The first edge layer is evaluated per node rather than per edge:
    :math:`\Theta[\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i] = A\mathbf{x}_i + B\mathbf{x}_j`
    with :math:`A = \Theta_1 - \Theta_2, B = \Theta_2`, so it costs two ``(B, N, C)`` products
    and a gather instead of an ``(E, 2F) x (2F, C)`` product. ``A`` and ``B`` are stored
    directly (``lin_i``, ``lin_j``): the same family of functions.

    Padded events, each node's ``k`` neighbour slots (``valid``: which hold a neighbour). In
    eval (and export) the edge MLP runs on every slot, the mean over the valid ones; in
    training (:meth:`train_forward`) on the valid edges only, so BatchNorm's batch statistics
    are those of the real edges and nodes and padding costs nothing.

    Args:
        in_channels: node feature size ``F_in``.
        channels: output sizes of the edge MLP layers; the last is ``F_out``.
        act: activation class (default ``nn.ReLU``).

    Shapes:
        h: (B, N, F_in), idx / valid: (B, N, k), mask: (B, N) -> (B, N, F_out)
    """

    def __init__(self, in_channels: int, channels: Sequence[int], act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        channels = list(channels)
        self.in_channels = in_channels
        self.channels = channels
        self.out_channels = channels[-1]
        self.lin_i = nn.Linear(in_channels, channels[0], bias=False)
        self.lin_j = nn.Linear(in_channels, channels[0], bias=False)
        layers: list[nn.Module] = [nn.BatchNorm1d(channels[0]), act()]
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), act()]
        self.edge_mlp = nn.Sequential(*layers)
        if in_channels == channels[-1]:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Linear(in_channels, channels[-1], bias=False), nn.BatchNorm1d(channels[-1]))
        self.act = act()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, h: Tensor, idx: Tensor, valid: Tensor, mask: Tensor, nodes: Optional[Tensor] = None) -> Tensor:
        """``nodes``: the flat indices ``b * N + i`` of the valid nodes (training; computed here
        if not given: the caller computes them once for all blocks)."""
        if self.training:
            return self.train_forward(h, idx, valid, mask, nodes)
        # eval and export: every slot (BatchNorm's running statistics act row by row), so every
        # shape is a function of B, N and k only
        b, n, c = h.shape
        k = idx.shape[2]
        edges = self.lin_i(h)[:, :, None, :] + gather_nodes(self.lin_j(h), idx)  # (B, N, k, C0)
        m = self.edge_mlp(edges.reshape(b * n * k, edges.shape[-1])).reshape(b, n, k, self.out_channels)
        w = valid.to(m.dtype)[..., None]
        agg = (m * w).sum(2) / w.sum(2).clamp(min=1.0)
        return self.act(agg + self.shortcut(h.reshape(b * n, c)).reshape(b, n, self.out_channels))

    def train_forward(self, h: Tensor, idx: Tensor, valid: Tensor, mask: Tensor, nodes: Optional[Tensor] = None) -> Tensor:
        """The same function on the valid edges and nodes only, as a list (BatchNorm's batch
        statistics are those of the real edges and nodes, not of padding; no work on padding).
        Zeros at padding."""
        b, n, c = h.shape
        k = idx.shape[2]
        flat = h.reshape(b * n, c)
        if nodes is None:
            nodes = mask.reshape(-1).nonzero().squeeze(1)
        slots = valid.reshape(-1).nonzero().squeeze(1)  # valid (node, slot) pairs, flat
        target = torch.div(slots, k, rounding_mode="floor")  # flat node b * N + i of each edge
        source = (idx + (torch.arange(b, device=h.device) * n)[:, None, None]).reshape(-1)[slots]
        m = self.edge_mlp(self.lin_i(flat)[target] + self.lin_j(flat)[source])  # (E, C)
        count = valid.sum(2).reshape(b * n, 1).clamp(min=1).to(m.dtype)
        agg = m.new_zeros(b * n, m.shape[1]).index_add_(0, target, m) / count
        short = self.shortcut(flat[nodes])
        out = agg.index_add(0, nodes, short.to(agg.dtype))
        return self.act(out).reshape(b, n, self.out_channels)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.channels})"
