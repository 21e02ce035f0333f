"""Pre-norm graph-transformer layer: kNN attention with relative geometry, optional global attention, FFN."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import TransformerConv

from graphevent.nn.layers.global_attention import EventSelfAttention
from graphevent.nn.layers.mlp import MLP


class GraphTransformerLayer(nn.Module):
    r"""One graph-transformer layer over the kNN graph of each event.

    .. math::
        h &= x + \mathrm{GraphAttn}(\mathrm{LN}(x), E, e) \\
        h &= h + \mathrm{EventAttn}(\mathrm{LN}(h)) \quad \text{(if ``global_attention``)} \\
        x' &= h + \mathrm{FFN}(\mathrm{LN}(h))

    ``GraphAttn`` is PyG's ``TransformerConv`` (Shi et al., arXiv:2009.03509): node i
    attends to its k neighbours j with :math:`\alpha_{ij} = \mathrm{softmax}_j(q_i^\top
    (k_j + W_e e_{ij}) / \sqrt{d})` and returns :math:`W_r x_i + \sum_j \alpha_{ij}(v_j +
    W_e e_{ij})` (the root term ``W_r`` is kept so every parameter is used), where
    :math:`e_{ij}` embeds the relative geometry (delta eta, delta phi, delta R) of the
    pair, so attention depends on where each neighbour sits. ``EventAttn`` is full
    attention among all nodes of the same event (:class:`EventSelfAttention`).

    Args:
        dim: node feature size ``D`` (divisible by ``heads``).
        heads: attention heads (default 4).
        edge_dim: size of the edge embedding ``e`` (default 16).
        ffn_ratio: FFN hidden size as a multiple of ``dim`` (default 2).
        dropout: dropout on attention weights and the FFN (default 0).
        global_attention: add the event-wide attention sub-layer (default False).
        act: FFN activation class (default ``nn.GELU``).

    Shapes:
        x: (num_nodes, D), edge_index: (2, num_edges), edge_attr: (num_edges, edge_dim),
        batch: (num_nodes,) -> (num_nodes, D)
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        edge_dim: int = 16,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        global_attention: bool = False,
        act: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.global_attention = global_attention
        self.norm1 = nn.LayerNorm(dim)
        self.conv = TransformerConv(
            dim, dim // heads, heads=heads, edge_dim=edge_dim, dropout=dropout, root_weight=True
        )
        if global_attention:
            self.norm_g = nn.LayerNorm(dim)
            self.attn = EventSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MLP(dim, [int(dim * ffn_ratio)], dim, act=act, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.children():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor) -> Tensor:
        h = x + self.conv(self.norm1(x), edge_index, edge_attr)
        if self.global_attention:
            h = h + self.attn(self.norm_g(h), batch)
        return h + self.ffn(self.norm2(h))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads}, global_attention={self.global_attention})"
