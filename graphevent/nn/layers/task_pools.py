"""All tasks' attention pools over all encoders' node tokens, with stacked parameters, in one pass."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.nn.layers.cross_attention import TaskAttentionPool


class TaskPools(nn.Module):
    r"""One :class:`TaskAttentionPool` per (task, encoder), with stacked parameters, run together.

    Pool ``(t, e)`` has its own learned queries and weights and attends over encoder ``e``'s
    node tokens, exactly as a :class:`TaskAttentionPool` (:meth:`pool` returns the equivalent
    stand-alone module). Each kind of parameter is one ``(T, E, ...)`` tensor, so all
    ``T * E`` pools run as a handful of batched products instead of ``T * E`` small layers
    (a training step of ``multitask`` on a GPU is bound by how many kernels it launches).

    The attention is computed in a cheaper order that gives the same function. With
    :math:`\hat{x}_s` the affine-free LayerNorm of node ``s`` and :math:`\gamma, \beta` the
    LayerNorm affine, per head ``h``:

    .. math::
        \mathrm{score}_{qs} = q_h^\top W_{k,h}(\gamma \odot \hat{x}_s + \beta)/\sqrt{d}
          = u_{qh}^\top \hat{x}_s + \mathrm{const}_q,\qquad
        u_{qh} = \gamma \odot W_{k,h}^\top q_h / \sqrt{d}

    and the constant drops out of the softmax over nodes (so the key projection needs no
    bias). Since the weights :math:`\alpha_{qs}` sum to one over nodes,

    .. math::
        \sum_s \alpha_{qs} v_{h}(x_s) = W_{v,h}\big(\gamma \odot \bar{x}_{qh}\big)
          + W_{v,h}\beta + b_{v,h},\qquad \bar{x}_{qh} = \sum_s \alpha_{qs} \hat{x}_s,

    and the value and output projections fold into one ``(D, H * D)`` matrix per pool. Keys
    and values are never formed per node: the work over nodes is one ``(N, D) x (D, T H Q)``
    product for the scores and one for the weighted sums, per encoder. With attention
    dropout the kept weights no longer sum to one, and the value bias is scaled by their sum.

    Args:
        dim: token size ``D`` (divisible by ``heads``).
        heads: attention heads ``H``.
        num_queries: task tokens per pool ``Q``.
        num_tasks: ``T``.
        num_encoders: ``E``.
        dropout: dropout on attention weights and in the FFN (default 0).

    Shapes:
        nodes: (E, B, S, D) each encoder's node tokens per event, node_mask: (B, S) bool
        (True = real token; every event needs one) -> tokens (B, T, E, Q, D),
        weights (B, T, E, H, Q, S) or ``None``
    """

    def __init__(
        self, dim: int, heads: int, num_queries: int, num_tasks: int, num_encoders: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.dim, self.heads, self.num_queries = dim, heads, num_queries
        self.num_tasks, self.num_encoders = num_tasks, num_encoders
        self.dropout = dropout
        self.eps = 1e-5  # nn.LayerNorm's default, as in TaskAttentionPool
        te = (num_tasks, num_encoders)

        def param(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*te, *shape))

        self.queries = param(num_queries, dim)
        self.kv_norm_weight, self.kv_norm_bias = param(dim), param(dim)
        self.query_weight, self.query_bias = param(dim, dim), param(dim)
        self.key_weight = param(dim, dim)  # no bias: it would only shift the scores of all nodes
        self.value_weight, self.value_bias = param(dim, dim), param(dim)
        self.out_weight, self.out_bias = param(dim, dim), param(dim)
        self.ffn_norm_weight, self.ffn_norm_bias = param(dim), param(dim)
        self.ffn_in_weight, self.ffn_in_bias = param(2 * dim, dim), param(2 * dim)
        self.ffn_out_weight, self.ffn_out_bias = param(dim, 2 * dim), param(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As :class:`TaskAttentionPool`: ``nn.Linear``'s default uniform(+-1/sqrt(fan_in)),
        unit LayerNorm, queries ~ N(0, 0.02^2)."""
        nn.init.normal_(self.queries, std=0.02)
        for name in ("query", "key", "value", "out", "ffn_in", "ffn_out"):
            weight = getattr(self, f"{name}_weight")
            bound = 1.0 / math.sqrt(weight.size(-1))
            nn.init.uniform_(weight, -bound, bound)
            if name != "key":
                nn.init.uniform_(getattr(self, f"{name}_bias"), -bound, bound)
        for name in ("kv_norm", "ffn_norm"):
            nn.init.ones_(getattr(self, f"{name}_weight"))
            nn.init.zeros_(getattr(self, f"{name}_bias"))

    def forward(self, nodes: Tensor, node_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        n_enc, b, s, dim = nodes.shape
        t, h, q_len = self.num_tasks, self.heads, self.num_queries
        d = dim // h
        gamma = self.kv_norm_weight.transpose(0, 1)  # (E, T, D)
        x_hat = F.layer_norm(nodes, (dim,), eps=self.eps)  # (E, B, S, D)
        # queries folded into the key projection: u (E, T, H, Q, D), one score vector per query
        q = torch.baddbmm(self.query_bias.view(t * n_enc, 1, dim), self.queries.view(t * n_enc, q_len, dim),
                          self.query_weight.view(t * n_enc, dim, dim).transpose(1, 2))  # (T*E, Q, D)
        q = q.view(t, n_enc, q_len, h, d)
        key_w = self.key_weight.view(t, n_enc, h, d, dim)
        u = torch.einsum("teqhc,tehcd->ethqd", q, key_w) * (gamma[:, :, None, None, :] / math.sqrt(d))
        scores = torch.bmm(x_hat.view(n_enc, b * s, dim), u.reshape(n_enc, t * h * q_len, dim).transpose(1, 2))
        scores = scores.view(n_enc, b, s, t * h * q_len)
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
        weights = scores.masked_fill(~node_mask[None, :, :, None], float("-inf")).softmax(dim=2)  # over nodes
        kept = F.dropout(weights, self.dropout, self.training)
        x_bar = torch.matmul(kept.transpose(2, 3).to(x_hat.dtype), x_hat)  # (E, B, T*H*Q, D)
        # value and output projections folded: out = M x_bar (summed over heads) + c
        value_w = self.value_weight.view(t, n_enc, h, d, dim) * self.kv_norm_weight[:, :, None, None, :]
        out_w = self.out_weight.view(t, n_enc, dim, h, d)
        m = torch.einsum("tefhc,tehcd->etfhd", out_w, value_w).reshape(n_enc, t, dim, h * dim)
        value_b = torch.einsum("tekd,ted->tek", self.value_weight, self.kv_norm_bias) + self.value_bias
        c = torch.einsum("tefk,tek->tef", self.out_weight, value_b) + self.out_bias  # (T, E, D)
        x_bar = x_bar.view(n_enc, b, t, h, q_len, dim).transpose(3, 4).reshape(n_enc, b, t, q_len, h * dim)
        att = torch.einsum("ebtqk,etfk->bteqf", x_bar, m)  # (B, T, E, Q, D)
        if self.training and self.dropout > 0:  # the kept weights no longer sum to one
            kept_sum = kept.sum(2).view(n_enc, b, t, h, q_len).permute(1, 2, 0, 4, 3)  # (B, T, E, Q, H)
            value_part = torch.einsum("tefhc,tehc->tefh", out_w, value_b.view(t, n_enc, h, d))
            att = att + torch.einsum("bteqh,tefh->bteqf", (kept_sum - 1).to(att.dtype), value_part)
        tok = self.queries + att + c[:, :, None]
        # per-pool pre-norm FFN
        y = torch.addcmul(self.ffn_norm_bias[:, :, None], F.layer_norm(tok, (dim,), eps=self.eps),
                          self.ffn_norm_weight[:, :, None])
        y = F.gelu(torch.einsum("bteqd,tefd->bteqf", y, self.ffn_in_weight) + self.ffn_in_bias[:, :, None])
        y = F.dropout(y, self.dropout, self.training)
        tok = tok + torch.einsum("bteqd,tefd->bteqf", y, self.ffn_out_weight) + self.ffn_out_bias[:, :, None]
        if not need_weights:
            return tok, None
        return tok, weights.view(n_enc, b, s, t, h, q_len).permute(1, 3, 0, 4, 5, 2)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.dim}, tasks={self.num_tasks}, encoders={self.num_encoders}, "
                f"num_queries={self.num_queries})")

    @torch.no_grad()
    def pool(self, task: int, encoder: int) -> TaskAttentionPool:
        """The stand-alone :class:`TaskAttentionPool` that computes pool ``(task, encoder)``
        (a copy of its parameters; the key bias, which has no effect, is zero)."""
        i = (task, encoder)
        p = TaskAttentionPool(self.dim, self.heads, self.num_queries, self.dropout).to(self.queries)
        state = p.state_dict()
        for name, key in _shared_keys(state).items():
            state[key] = getattr(self, name)[i]
        state["attn.kv.weight"] = torch.cat([self.key_weight[i], self.value_weight[i]])
        state["attn.kv.bias"] = torch.cat([torch.zeros_like(self.value_bias[i]), self.value_bias[i]])
        p.load_state_dict(state)
        return p

    @staticmethod
    def stack_pool_state(pools: Sequence[Sequence[dict[str, Tensor]]]) -> dict[str, Tensor]:
        """Parameters of :class:`TaskPools` from ``pools[t][e]``, the state dicts of
        stand-alone :class:`TaskAttentionPool` s (their key bias is dropped: it has no effect).
        Loads weights saved before the pools were stacked."""

        def stack(fn) -> Tensor:
            return torch.stack([torch.stack([fn(sd) for sd in row]) for row in pools])

        dim = pools[0][0]["queries"].size(-1)
        out = {name: stack(lambda sd, name=name: sd[_shared_keys(sd)[name]]) for name in _shared_keys(pools[0][0])}
        out["key_weight"] = stack(lambda sd: sd["attn.kv.weight"][:dim])
        out["value_weight"] = stack(lambda sd: sd["attn.kv.weight"][dim:])
        out["value_bias"] = stack(lambda sd: sd["attn.kv.bias"][dim:])
        return out


def _shared_keys(pool_state: dict[str, Tensor]) -> dict[str, str]:
    """:class:`TaskPools` parameter -> :class:`TaskAttentionPool` state-dict key, for the
    parameters stored alike in both (all but the key/value projection, which the stand-alone
    pool keeps as one ``attn.kv`` layer). The FFN's last layer index depends on its dropout."""
    layers = sorted({int(k.split(".")[2]) for k in pool_state if k.startswith("ffn.net.")})
    first, last = f"ffn.net.{layers[0]}", f"ffn.net.{layers[-1]}"
    return {
        "queries": "queries",
        "kv_norm_weight": "norm_kv.weight", "kv_norm_bias": "norm_kv.bias",
        "query_weight": "attn.q.weight", "query_bias": "attn.q.bias",
        "out_weight": "attn.out.weight", "out_bias": "attn.out.bias",
        "ffn_norm_weight": "norm_ffn.weight", "ffn_norm_bias": "norm_ffn.bias",
        "ffn_in_weight": f"{first}.weight", "ffn_in_bias": f"{first}.bias",
        "ffn_out_weight": f"{last}.weight", "ffn_out_bias": f"{last}.bias",
    }
