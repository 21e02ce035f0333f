"""Graph-transformer layers on padded ``(B, N, D)`` tensors: plain torch ops that export.

:class:`DenseGraphTransformerLayer` runs a trained
:class:`~graphevent.nn.layers.graph_transformer_layer.GraphTransformerLayer` (its parameters,
shared) on padded events with the neighbour indices of
:func:`~graphevent.nn.layers.dense_knn.dense_knn`, for ONNX and TorchScript export: the same
arithmetic as :func:`~graphevent.nn.layers.graph_transformer_layer.neighbour_attention` and
:class:`~graphevent.nn.layers.global_attention.EventSelfAttention`, every shape a function
of ``B``, ``N`` and ``k`` only.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.nn.layers.dense_knn import gather_nodes
from graphevent.nn.layers.global_attention import key_mask
from graphevent.utils.geometry import wrap_delta


def dense_edge_geometry(positions: Tensor, idx: Tensor, periods: Optional[Tuple[float, float]] = None) -> Tensor:
    """(delta eta, delta phi, delta R) of each neighbour slot, neighbour minus node, as
    :func:`~graphevent.nn.layers.knn.edge_features` (wrapped along the periodic axes of
    ``periods``, ``DatasetInfo.periods``).

    Shapes:
        positions: (B, N, 2), idx: (B, N, k) -> (B, N, k, 3)
    """
    d = gather_nodes(positions, idx) - positions[:, :, None, :]
    if periods is not None:
        d = torch.stack([wrap_delta(d[..., 0], periods[0]), wrap_delta(d[..., 1], periods[1])], dim=-1)
    return torch.cat([d, torch.linalg.vector_norm(d, dim=-1, keepdim=True)], dim=-1)


class DenseEventAttention(nn.Module):
    """An :class:`~graphevent.nn.layers.global_attention.EventSelfAttention` and the LayerNorm
    before it (modules shared) on padded events: every node attends to the valid nodes of
    its event.

    Args:
        attn: the trained event attention.
        norm: the layer's pre-norm (``norm_g``).

    Shapes:
        h: (B, N, D), mask: (B, N) bool, bias: (B, H, N, N) pair bias or None -> (B, N, D)
        (rows at padding: finite, unused)
    """

    def __init__(self, attn: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = norm, attn.qkv, attn.proj
        self.dim, self.heads = int(attn.dim), int(attn.heads)
        self.lowest = float(torch.finfo(torch.float32).min)  # bias at padded keys (key_mask)

    def forward(self, h: Tensor, mask: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        x = self.norm(h)
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if bias is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, N, d)
        else:  # written out: the ONNX exporter's decomposition of SDPA with a float mask does not export
            score = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dim // self.heads)
            out = torch.matmul(torch.softmax(score + key_mask(mask, bias, self.lowest), dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dim))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"


class DenseGraphTransformerLayer(nn.Module):
    r"""A :class:`~graphevent.nn.layers.graph_transformer_layer.GraphTransformerLayer` (its
    parameters and modules, shared) on padded events.

    kNN attention over the ``k`` neighbour slots of each node (invalid slots get weight 0; a
    node without neighbours keeps only the root term, as in PyG's ``TransformerConv``), then
    the optional event-wide attention (:class:`DenseEventAttention`) and the FFN, each a
    pre-norm residual.

    Args:
        layer: the trained layer (eval mode).

    Shapes:
        x: (B, N, D), idx / valid: (B, N, k), edge_attr: (B, N, k, edge_dim) embedded
        geometry, mask: (B, N) bool, pair_bias: (B, N, k, H) or None, event_bias:
        (B, H, N, N) or None -> (B, N, D)
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        conv = layer.conv
        self.heads, self.channels = int(conv.heads), int(conv.out_channels)
        self.norm1, self.norm2, self.ffn = layer.norm1, layer.norm2, layer.ffn
        # the PyG linear layers' parameters, registered here (the same tensors)
        self.query_weight, self.query_bias = conv.lin_query.weight, conv.lin_query.bias
        self.key_weight, self.key_bias = conv.lin_key.weight, conv.lin_key.bias
        self.value_weight, self.value_bias = conv.lin_value.weight, conv.lin_value.bias
        self.skip_weight, self.skip_bias = conv.lin_skip.weight, conv.lin_skip.bias
        self.edge_weight = conv.lin_edge.weight  # TransformerConv's edge projection has no bias
        self.lowest = float(torch.finfo(torch.float32).min)  # score of an empty slot, as neighbour_attention
        self.event_attn: Optional[DenseEventAttention] = (
            DenseEventAttention(layer.attn, layer.norm_g) if layer.global_attention else None
        )

    def neighbour_attention(
        self, x: Tensor, idx: Tensor, valid: Tensor, edge_attr: Tensor, pair_bias: Optional[Tensor] = None
    ) -> Tensor:
        b, n, _ = x.shape
        k = idx.shape[2]
        h, c = self.heads, self.channels
        weight = torch.cat([self.query_weight, self.key_weight, self.value_weight, self.skip_weight])
        bias = torch.cat([self.query_bias, self.key_bias, self.value_bias, self.skip_bias])
        query, key_value, skip = F.linear(x, weight, bias).split([h * c, 2 * h * c, h * c], dim=-1)
        edge = F.linear(edge_attr, self.edge_weight).view(b, n, k, 1, h, c)
        key_j, value_j = (gather_nodes(key_value, idx).view(b, n, k, 2, h, c) + edge).unbind(3)
        score = (query.view(b, n, 1, h, c) * key_j).sum(-1) / math.sqrt(c)  # (B, N, k, H)
        if pair_bias is not None:
            score = score + pair_bias
        score = score.masked_fill(~valid[..., None], self.lowest)
        alpha = torch.softmax(score, dim=2) * valid[..., None].to(score.dtype)
        return (alpha[..., None] * value_j).sum(2).reshape(b, n, h * c) + skip

    def forward(
        self, x: Tensor, idx: Tensor, valid: Tensor, edge_attr: Tensor, mask: Tensor,
        pair_bias: Optional[Tensor] = None, event_bias: Optional[Tensor] = None,
    ) -> Tensor:
        h = x + self.neighbour_attention(self.norm1(x), idx, valid, edge_attr, pair_bias)
        if self.event_attn is not None:
            h = h + self.event_attn(h, mask, event_bias)
        return h + self.ffn(self.norm2(h))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.heads * self.channels}, heads={self.heads}, global_attention={self.event_attn is not None})"
