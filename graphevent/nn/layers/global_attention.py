"""Multi-head self-attention over all nodes of each event (padding masked)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.nn.layers.neighbours import EventPacking


def key_mask(mask: Tensor, bias: Optional[Tensor], lowest: float) -> Tensor:
    """The ``attn_mask`` of :func:`F.scaled_dot_product_attention` over an event's nodes:
    the boolean key mask, or, with a ``bias``, the bias with ``lowest`` (the lowest float of
    its dtype) at padded keys.

    Shapes:
        mask: (B, M) bool, bias: (B, H, M, M) or None -> (B, 1, 1, M) bool | (B, H, M, M)
    """
    if bias is None:
        return mask[:, None, None, :]
    return bias.masked_fill(~mask[:, None, None, :], lowest)


class EventSelfAttention(nn.Module):
    r"""Full self-attention among the nodes of each event, never across events.

    Nodes are packed per event (:class:`EventPacking`, built once per batch); padded slots are excluded as keys
    by the attention mask and dropped from the output, so results do not depend on which
    other events share the batch (Vaswani et al., arXiv:1706.03762).

    Args:
        dim: node feature size ``D`` (divisible by ``heads``).
        heads: attention heads (default 4).
        dropout: attention dropout (default 0).

    An optional ``bias`` (e.g. :class:`~graphevent.nn.layers.pair_bias.PairBias` of every pair
    of nodes of an event, in the packing's layout) is added to the attention logits.

    Shapes:
        x: (num_nodes, D), packing: per-event layout of the nodes, bias: (B, H, M, M) or None
        -> (num_nodes, D)
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.qkv.reset_parameters()
        self.proj.reset_parameters()

    def forward(self, x: Tensor, packing: EventPacking, bias: Tensor | None = None) -> Tensor:
        dense, mask = packing.pack(x), packing.mask  # (B, M, D), (B, M)
        b, m, _ = dense.shape
        q, k, v = self.qkv(dense).view(b, m, 3, self.heads, self.dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask(mask, bias, torch.finfo(dense.dtype).min), dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, M, d)
        out = out.transpose(1, 2).reshape(b, m, self.dim)
        return self.proj(packing.unpack(out))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"
