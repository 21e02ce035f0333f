"""Attention between token sets: task queries over node tokens, and task tokens over each other."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from graphevent.nn.layers.mlp import MLP


class MultiHeadAttention(nn.Module):
    r"""Multi-head scaled dot-product attention that can return its weights.

    .. math::
        \mathrm{out} = W_o\,\mathrm{concat}_h\big(\mathrm{softmax}(Q_h K_h^\top/\sqrt{d}
        + \log M)\,V_h\big)

    where ``M`` is a boolean "may attend" mask (False entries get weight 0). Every query
    must be allowed at least one key.

    Args:
        dim: query size ``D`` (divisible by ``heads``; also the output size).
        heads: attention heads (default 4).
        kv_dim: key/value input size (default ``dim``).
        dropout: dropout on the attention weights (default 0).

    Shapes:
        query: (B, L, D), key_value: (B, S, kv_dim), allowed: (B, L, S) or (B, 1, S) bool
        -> out (B, L, D), weights (B, heads, L, S) (or ``None`` without ``need_weights``)
    """

    def __init__(self, dim: int, heads: int = 4, kv_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.dim = dim
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.q.reset_parameters()
        self.kv.reset_parameters()
        self.out.reset_parameters()

    def forward(
        self, query: Tensor, key_value: Tensor, allowed: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        b, l, _ = query.shape
        s = key_value.size(1)
        h, d = self.heads, self.dim // self.heads
        q = self.q(query).view(b, l, h, d).transpose(1, 2)  # (B, H, L, d)
        k, v = self.kv(key_value).view(b, s, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, S, d) each
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)  # (B, H, L, S)
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32)).masked_fill(~allowed[:, None], float("-inf"))
        weights = scores.softmax(dim=-1)
        out = (self.drop(weights).to(v.dtype) @ v).transpose(1, 2).reshape(b, l, self.dim)
        return self.out(out), (weights if need_weights else None)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"


class TaskAttentionPool(nn.Module):
    r"""Learned task queries attend over the node tokens of one event to form task tokens.

    .. math::
        t = q + \mathrm{Attn}(q, \mathrm{LN}(X)), \qquad t' = t + \mathrm{FFN}(\mathrm{LN}(t))

    with ``num_queries`` learned queries ``q`` shared by all events (the "class attention"
    of CaiT, Touvron et al., arXiv:2103.17239, and the pooling by multi-head attention of
    the Set Transformer, Lee et al., arXiv:1810.00825). Padded node slots are masked.

    Args:
        dim: token size ``D``.
        heads: attention heads (default 4).
        num_queries: task tokens per event ``Q`` (default 2).
        dropout: dropout (default 0).

    Shapes:
        nodes: (B, S, D) dense node tokens, node_mask: (B, S) bool (True = real node)
        -> tokens (B, Q, D), weights (B, heads, Q, S) or ``None``
    """

    def __init__(self, dim: int, heads: int = 4, num_queries: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_queries = num_queries
        self.queries = nn.Parameter(torch.empty(num_queries, dim))
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = MLP(dim, [2 * dim], dim, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.queries, std=0.02)
        for m in (self.norm_kv, self.attn, self.norm_ffn, self.ffn):
            m.reset_parameters()

    def forward(self, nodes: Tensor, node_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        q = self.queries.unsqueeze(0).expand(nodes.size(0), -1, -1)
        att, weights = self.attn(q, self.norm_kv(nodes), node_mask[:, None, :], need_weights)
        t = q + att
        return t + self.ffn(self.norm_ffn(t)), weights

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, num_queries={self.num_queries})"


def cross_group_mask(groups: Tensor) -> Tensor:
    """Which tokens may attend to which in :class:`CrossTaskFusion`.

    Args:
        groups: (T, 2) int ``(task, encoder)`` of each token.

    Returns:
        (T, T) bool: token i may attend to token j if j belongs to another task, or to the
        same task through another encoder. A token whose row would be empty (one task and
        one encoder) may attend to its own group instead.
    """
    same_task = groups[:, None, 0] == groups[None, :, 0]
    same_enc = groups[:, None, 1] == groups[None, :, 1]
    allowed = ~(same_task & same_enc)
    empty = ~allowed.any(dim=1)
    return allowed | (empty[:, None] & same_task & same_enc)


class CrossTaskFusion(nn.Module):
    r"""Merge task tokens by cross attention: each task's tokens attend to the other tasks'.

    Tokens carry a ``(task, encoder)`` group. A token of task ``t`` formed from encoder
    ``e`` attends to every token of the other tasks (any encoder) and to task ``t``'s tokens
    formed from the other encoder (:func:`cross_group_mask`); then a shared FFN. Pre-norm
    residual layers, ``depth`` of them.

    Args:
        dim: token size ``D``.
        heads: attention heads (default 4).
        depth: fusion layers (default 1).
        dropout: dropout (default 0).

    Shapes:
        tokens: (B, T, D), allowed: (T, T) bool (:func:`cross_group_mask` of the tokens'
        groups) -> (B, T, D)
    """

    def __init__(self, dim: int, heads: int = 4, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.depth = depth
        self.norms1 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.attns = nn.ModuleList(MultiHeadAttention(dim, heads, dropout=dropout) for _ in range(depth))
        self.norms2 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.ffns = nn.ModuleList(MLP(dim, [2 * dim], dim, dropout=dropout) for _ in range(depth))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for group in (self.norms1, self.attns, self.norms2, self.ffns):
            for m in group:
                m.reset_parameters()

    def forward(self, tokens: Tensor, allowed: Tensor) -> Tensor:
        """``allowed``: ``cross_group_mask(groups)``, computed once by the caller."""
        allowed = allowed.unsqueeze(0)  # (1, T, T), the same for every event
        for norm1, attn, norm2, ffn in zip(self.norms1, self.attns, self.norms2, self.ffns):
            h = norm1(tokens)
            tokens = tokens + attn(h, h, allowed)[0]
            tokens = tokens + ffn(norm2(tokens))
        return tokens

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, depth={self.depth})"
