"""Multi-head self-attention over all valid nodes of each event, on padded events."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EventSelfAttention(nn.Module):
    r"""Full self-attention among the nodes of each event, never across events.

    Padded slots are excluded as keys by the attention mask (rows at padding are finite and
    unused), so results do not depend on which other events share the batch (Vaswani et al.,
    arXiv:1706.03762). Without a bias, PyTorch's fused attention never holds the ``(B, H, M, M)``
    scores; with one, the scores are written out (the ONNX exporter's decomposition of fused
    attention with a float mask does not export).

    Args:
        dim: node feature size ``D`` (divisible by ``heads``).
        heads: attention heads (default 4).
        dropout: attention dropout (default 0).

    An optional ``bias`` (e.g. :class:`~graphevent.nn.layers.pair_bias.PairBias` of every pair
    of nodes of an event) is added to the attention logits.

    Shapes:
        x: (B, M, D), mask: (B, M) bool, bias: (B, H, M, M) or None -> (B, M, D)
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

    def forward(self, x: Tensor, mask: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        b, m, _ = x.shape
        q, k, v = self.qkv(x).view(b, m, 3, self.heads, self.dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        p = self.dropout if self.training else 0.0
        keys = mask | ~mask.any(dim=1, keepdim=True)  # an event without valid nodes: finite rows, unused
        if bias is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :], dropout_p=p)  # (B, H, M, d)
        else:
            lowest = -65504.0 if q.dtype == torch.float16 else -1e30  # below any logit, in every float dtype
            score = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dim // self.heads)
            score = score + bias.to(score.dtype).masked_fill(~keys[:, None, None, :], lowest)
            out = torch.matmul(F.dropout(torch.softmax(score, dim=-1), p=p, training=self.training), v)
        return self.proj(out.transpose(1, 2).reshape(b, m, self.dim))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"
