"""EdgeConv block as used by DGCNN and ParticleNet, on padded events."""

from __future__ import annotations

from collections.abc import Sequence

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

    One form for training and export: padded events, each node's ``k`` neighbour slots
    (``valid``: which hold a neighbour); in training the MLPs see the valid edges and nodes
    only (:meth:`on_rows`).

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

    def forward(self, h: Tensor, idx: Tensor, valid: Tensor, mask: Tensor) -> Tensor:
        edges = self.lin_i(h)[:, :, None, :] + gather_nodes(self.lin_j(h), idx)  # (B, N, k, C0)
        m = self.on_rows(edges, valid, True)
        w = valid.to(m.dtype)[..., None]
        agg = (m * w).sum(2) / w.sum(2).clamp(min=1.0)
        return self.act(agg + self.on_rows(h, mask, False))

    def on_rows(self, x: Tensor, rows: Tensor, edge: bool) -> Tensor:
        """The edge MLP (``edge``) or the shortcut over the last dimension of ``x``: in training
        on the valid ``rows`` only (BatchNorm's batch statistics are those of the real edges or
        nodes, not of padding), zeros elsewhere; in eval on every row (BatchNorm's running
        statistics: row by row the same values, and shapes that depend on ``x``'s alone, as
        export needs).

        Shapes:
            x: (..., C_in), rows: x.shape[:-1] bool -> (..., C_out)
        """
        if self.training:
            picked = self.edge_mlp(x[rows]) if edge else self.shortcut(x[rows])
            out = picked.new_zeros(list(rows.shape) + [picked.shape[-1]])
            out[rows] = picked
            return out
        shape = list(x.shape)
        flat = x.reshape(-1, shape[-1])
        y = self.edge_mlp(flat) if edge else self.shortcut(flat)
        return y.reshape(shape[:-1] + [y.shape[-1]])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.channels})"
