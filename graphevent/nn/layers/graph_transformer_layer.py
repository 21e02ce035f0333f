"""Pre-norm graph-transformer layer: kNN attention with relative geometry, optional global attention, FFN."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import TransformerConv

from graphevent.nn.layers.global_attention import EventSelfAttention
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.neighbours import EventPacking, NeighbourTable


def neighbour_attention(
    conv: TransformerConv, x: Tensor, table: NeighbourTable, edge_attr: Tensor, bias: Tensor | None = None
) -> Tensor:
    r"""``conv(x, edge_index, edge_attr)`` of a PyG ``TransformerConv`` (concat heads, root
    weight, edge features, no beta), computed on the dense neighbour table.

    The same weights and the same arithmetic as PyG's message passing, but the softmax and
    the sum over a node's neighbours run along the table's ``K`` axis: no scatter softmax and no
    scatter aggregation, whose backward passes are gathers over all edges; the query, key, value and root
    projections run as one product. Nodes without incoming edges get only
    the root term, as in PyG. ``bias`` (e.g. :class:`~graphevent.nn.layers.pair_bias.PairBias`
    of each node and its neighbours) is added to the attention logits. Attention dropout draws its mask in table layout, so in
    training mode with dropout > 0 the draws (not their distribution) differ from PyG's.

    Shapes:
        x: (N, D_in), table: (N, K), edge_attr: (N, K, edge_dim) in table layout,
        bias: (N, K, H) or None -> (N, H * C)
    """
    n, k = table.source.shape
    h, c = conv.heads, conv.out_channels
    lins = (conv.lin_query, conv.lin_key, conv.lin_value, conv.lin_skip)
    # the four projections of x as one product (their weights side by side); split's backward is one cat
    proj = F.linear(x, torch.cat([lin.weight for lin in lins]), torch.cat([lin.bias for lin in lins]))
    query, key_value, skip = proj.split([h * c, 2 * h * c, h * c], dim=1)
    edge = conv.lin_edge(edge_attr).view(n, k, 1, h, c)
    key_j, value_j = (key_value[table.source.reshape(-1)].view(n, k, 2, h, c) + edge).unbind(2)
    score = (query.view(n, 1, h, c) * key_j).sum(-1) / math.sqrt(c)  # (N, K, H)
    if bias is not None:
        score = score + bias
    if table.full:  # every slot holds an edge (kNN graphs of events with more than k nodes)
        alpha = torch.softmax(score, dim=1)
    else:
        score = score.masked_fill(~table.valid[..., None], torch.finfo(score.dtype).min)
        alpha = torch.softmax(score, dim=1) * table.valid[..., None]  # a node without edges gets 0
    alpha = F.dropout(alpha, p=conv.dropout, training=conv.training)
    out = (alpha[..., None] * value_j).sum(1).reshape(n, h * c)
    return out + skip


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
    attention among all nodes of the same event (:class:`EventSelfAttention`). Optional
    pair biases (ParT's interaction features, :class:`~graphevent.nn.layers.pair_bias.PairBias`,
    computed once per batch by the encoder) are added to the logits of either attention.

    Args:
        dim: node feature size ``D`` (divisible by ``heads``).
        heads: attention heads (default 4).
        edge_dim: size of the edge embedding ``e`` (default 16).
        ffn_ratio: FFN hidden size as a multiple of ``dim`` (default 2).
        dropout: dropout on attention weights and the FFN (default 0).
        global_attention: add the event-wide attention sub-layer (default False).
        act: FFN activation class (default ``nn.GELU``).

    The kNN attention runs on a dense neighbour table (:func:`neighbour_attention`), with
    the parameters of the PyG layer it equals.

    Shapes:
        x: (N, D), table: (N, K) (:class:`NeighbourTable`), edge_attr: (N, K, edge_dim),
        packing: :class:`EventPacking`, pair_bias: (N, K, H) or None, event_bias:
        (B, H, M, M) or None -> (N, D)
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

    def forward(
        self, x: Tensor, table: NeighbourTable, edge_attr: Tensor, packing: EventPacking | None,
        pair_bias: Tensor | None = None, event_bias: Tensor | None = None,
    ) -> Tensor:
        """One layer; ``table``, ``edge_attr`` (in table layout), ``packing`` and the optional
        attention biases are built once per batch by the caller and shared by all layers
        (``packing`` may be ``None`` if no layer has global attention)."""
        h = x + neighbour_attention(self.conv, self.norm1(x), table, edge_attr, pair_bias)
        if self.global_attention:
            h = h + self.attn(self.norm_g(h), packing, event_bias)
        return h + self.ffn(self.norm2(h))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads}, global_attention={self.global_attention})"
