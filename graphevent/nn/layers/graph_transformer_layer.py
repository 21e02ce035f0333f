"""Pre-norm graph-transformer layer on padded events: kNN attention with relative geometry,
optional event-wide attention, FFN."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.nn.layers.dense_knn import gather_nodes
from graphevent.nn.layers.global_attention import EventSelfAttention
from graphevent.nn.layers.mlp import MLP


class NeighbourAttention(nn.Module):
    r"""Attention of each node over its ``k`` neighbour slots: PyG's ``TransformerConv``
    (Shi et al., arXiv:2009.03509; concat heads, root weight, edge features, no beta), with
    its parameter names, on padded events.

    Node i attends to its neighbours j with :math:`\alpha_{ij} = \mathrm{softmax}_j(q_i^\top
    (k_j + W_e e_{ij}) / \sqrt{d} + b_{ij})` and returns :math:`W_r x_i + \sum_j \alpha_{ij}(v_j +
    W_e e_{ij})` (the root term keeps every parameter in use; a node without a valid slot gets
    only it). The softmax and the sum run along the slot axis (no scatter); the query, key,
    value and root projections run as one product. ``bias`` (e.g.
    :class:`~graphevent.nn.layers.pair_bias.PairBias` of each node and its neighbours) is added
    to the logits.

    Shapes:
        x: (B, N, D_in), idx / valid: (B, N, k), edge_attr: (B, N, k, edge_dim),
        bias: (B, N, k, H) or None -> (B, N, H * C)
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int, edge_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.out_channels, self.dropout = heads, out_channels, dropout
        width = heads * out_channels
        # PyG's TransformerConv's modules, in its order (checkpoints' keys and initial draws)
        self.lin_key = nn.Linear(in_channels, width)
        self.lin_query = nn.Linear(in_channels, width)
        self.lin_value = nn.Linear(in_channels, width)
        self.lin_edge = nn.Linear(edge_dim, width, bias=False)
        self.lin_skip = nn.Linear(in_channels, width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_key, self.lin_query, self.lin_value, self.lin_edge, self.lin_skip):
            lin.reset_parameters()

    def forward(self, x: Tensor, idx: Tensor, valid: Tensor, edge_attr: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        b, n, k = idx.shape
        h, c = self.heads, self.out_channels
        weight = torch.cat([self.lin_query.weight, self.lin_key.weight, self.lin_value.weight, self.lin_skip.weight])
        bias_qkv = torch.cat([self.lin_query.bias, self.lin_key.bias, self.lin_value.bias, self.lin_skip.bias])
        query, key_value, skip = F.linear(x, weight, bias_qkv).split([h * c, 2 * h * c, h * c], dim=-1)
        edge = self.lin_edge(edge_attr).view(b, n, k, 1, h, c)
        key_j, value_j = (gather_nodes(key_value, idx).view(b, n, k, 2, h, c) + edge).unbind(3)
        score = (query.view(b, n, 1, h, c) * key_j).sum(-1) / math.sqrt(c)  # (B, N, k, H)
        if bias is not None:
            score = score + bias
        lowest = -65504.0 if score.dtype == torch.float16 else -1e30  # below any logit, in every float dtype
        score = score.masked_fill(~valid[..., None], lowest)
        alpha = torch.softmax(score, dim=2) * valid[..., None].to(score.dtype)  # a node without neighbours: 0
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        return (alpha[..., None] * value_j).sum(2).reshape(b, n, h * c) + skip


class GraphTransformerLayer(nn.Module):
    r"""One graph-transformer layer over the kNN neighbours of each node, on padded events.

    .. math::
        h &= x + \mathrm{GraphAttn}(\mathrm{LN}(x), \mathrm{kNN}, e) \\
        h &= h + \mathrm{EventAttn}(\mathrm{LN}(h)) \quad \text{(if ``global_attention``)} \\
        x' &= h + \mathrm{FFN}(\mathrm{LN}(h))

    ``GraphAttn`` is :class:`NeighbourAttention` (PyG's ``TransformerConv`` arithmetic), where
    :math:`e_{ij}` embeds the relative geometry (delta eta, delta phi, delta R) of the pair,
    so attention depends on where each neighbour sits. ``EventAttn`` is full attention among
    the valid nodes of the same event (:class:`EventSelfAttention`). Optional pair biases
    (ParT's interaction features, :class:`~graphevent.nn.layers.pair_bias.PairBias`, computed
    once per batch by the encoder) are added to the logits of either attention. One form for
    training and export.

    Args:
        dim: node feature size ``D`` (divisible by ``heads``).
        heads: attention heads (default 4).
        edge_dim: size of the edge embedding ``e`` (default 16).
        ffn_ratio: FFN hidden size as a multiple of ``dim`` (default 2).
        dropout: dropout on attention weights and the FFN (default 0).
        global_attention: add the event-wide attention sub-layer (default False).
        act: FFN activation class (default ``nn.GELU``).

    Shapes:
        x: (B, N, D), idx / valid: (B, N, k), edge_attr: (B, N, k, edge_dim), mask: (B, N),
        pair_bias: (B, N, k, H) or None, event_bias: (B, H, N, N) or None -> (B, N, D)
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
        self.conv = NeighbourAttention(dim, dim // heads, heads, edge_dim, dropout)
        self.norm_g: Optional[nn.Module] = nn.LayerNorm(dim) if global_attention else None
        self.attn: Optional[EventSelfAttention] = EventSelfAttention(dim, heads, dropout) if global_attention else None
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MLP(dim, [int(dim * ffn_ratio)], dim, act=act, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.children():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(
        self, x: Tensor, idx: Tensor, valid: Tensor, edge_attr: Tensor, mask: Tensor,
        pair_bias: Optional[Tensor] = None, event_bias: Optional[Tensor] = None,
    ) -> Tensor:
        """One layer; the neighbours, ``edge_attr`` and the optional attention biases are built
        once per batch by the caller and shared by all layers."""
        h = x + self.conv(self.norm1(x), idx, valid, edge_attr, pair_bias)
        if self.norm_g is not None and self.attn is not None:
            h = h + self.attn(self.norm_g(h), mask, event_bias)
        return h + self.ffn(self.norm2(h))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads}, global_attention={self.global_attention})"
