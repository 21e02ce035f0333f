"""EdgeConv block as used by DGCNN and ParticleNet."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch_geometric.nn import MessagePassing


class EdgeConvBlock(MessagePassing):
    r"""EdgeConv block: an edge MLP on ``[x_i, x_j - x_i]``, mean over neighbours, shortcut.

    .. math::
        \mathbf{x}'_i = \mathrm{act}\Big(\mathrm{sc}(\mathbf{x}_i) + \frac{1}{|\mathcal{N}(i)|}
        \sum_{j \in \mathcal{N}(i)} h_{\Theta}\big([\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i]\big)\Big)

    ``h`` is ``len(channels)`` layers of ``Linear (no bias) -> BatchNorm -> act`` and ``sc``
    is ``Linear -> BatchNorm`` (identity when the sizes match), following ParticleNet
    (Qu & Gouskos, arXiv:1902.08570) and DGCNN (Wang et al., arXiv:1801.07829). Which graph
    it runs on is the caller's choice: the (eta, phi) kNN graph of the data, or a kNN graph
    recomputed in feature space ("dynamic" EdgeConv).

    The first edge layer is evaluated per node rather than per edge:
    :math:`\Theta[\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i] = A\mathbf{x}_i + B\mathbf{x}_j`
    with :math:`A = \Theta_1 - \Theta_2, B = \Theta_2`, so it costs two ``(N, C)`` products and
    a gather instead of an ``(E, 2F) x (2F, C)`` product. ``A`` and ``B`` are stored
    directly (``lin_i``, ``lin_j``): the same family of functions.

    Args:
        in_channels: node feature size ``F_in``.
        channels: output sizes of the edge MLP layers; the last is ``F_out``.
        act: activation class (default ``nn.ReLU``).
        aggr: neighbour aggregation (default ``"mean"`` as in ParticleNet).

    Shapes:
        x: (num_nodes, F_in), edge_index: (2, num_edges) (row 0 source j, row 1 target i)
        -> (num_nodes, F_out)
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        act: type[nn.Module] = nn.ReLU,
        aggr: str = "mean",
    ) -> None:
        super().__init__(aggr=aggr, flow="source_to_target")
        channels = list(channels)
        self.in_channels = in_channels
        self.channels = channels
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

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        out = self.propagate(edge_index, x=(self.lin_j(x), self.lin_i(x)), size=(x.size(0), x.size(0)))
        return self.act(out + self.shortcut(x))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        return self.edge_mlp(x_i + x_j)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.channels}, aggr={self.aggr!r})"
