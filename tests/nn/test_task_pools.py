"""The stacked task pools equal stand-alone pools run one by one: outputs, weights, gradients."""

from __future__ import annotations

import pytest
import torch

from graphevent.nn.layers.cross_attention import TaskAttentionPool
from graphevent.nn.layers.task_pools import TaskPools

T, E, B, S, D, H, Q = 3, 2, 5, 7, 16, 4, 2


def _pools_and_inputs(dropout: float = 0.0):
    torch.manual_seed(0)
    pools = TaskPools(D, H, Q, T, E, dropout).double()
    with torch.no_grad():  # LayerNorm affines away from (1, 0), so the folding is exercised
        for name in ("kv_norm", "ffn_norm"):
            getattr(pools, f"{name}_weight").uniform_(0.5, 1.5)
            getattr(pools, f"{name}_bias").normal_(0.0, 0.3)
    nodes = torch.randn(E, B, S, D, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 1:] = False  # an event with a single token
    return pools, nodes, mask


def test_task_pools_equal_each_pool_alone():
    pools, nodes, mask = _pools_and_inputs()
    pools.eval()
    tokens, weights = pools(nodes, mask, need_weights=True)
    assert tokens.shape == (B, T, E, Q, D) and weights.shape == (B, T, E, H, Q, S)
    alone = [[pools.pool(t, e).eval() for e in range(E)] for t in range(T)]
    for t in range(T):
        for e in range(E):
            tok_a, w_a = alone[t][e](nodes[e], mask, need_weights=True)
            torch.testing.assert_close(tokens[:, t, e], tok_a, rtol=0, atol=1e-12)
            torch.testing.assert_close(weights[:, t, e], w_a, rtol=0, atol=1e-12)
    assert torch.all(weights[1, ..., 4:] == 0) and torch.all(weights[3, ..., 1:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T, E, H, Q, dtype=torch.float64), rtol=0, atol=1e-12)

    # gradients: of the nodes and of every parameter (stand-alone grads restacked)
    probe = torch.randn(B, T, E, Q, D, dtype=torch.float64)
    grads = torch.autograd.grad((tokens * probe).sum(), [nodes, *pools.parameters()])
    flat = [p for row in alone for pool in row for p in pool.parameters()]
    total = sum((alone[t][e](nodes[e], mask)[0] * probe[:, t, e]).sum() for t in range(T) for e in range(E))
    g_alone = torch.autograd.grad(total, [nodes, *flat])
    torch.testing.assert_close(grads[0], g_alone[0], rtol=0, atol=1e-10)
    names = [n for n, _ in alone[0][0].named_parameters()]
    per_pool = len(names)
    restacked = TaskPools.stack_pool_state(
        [[dict(zip(names, g_alone[1 + (t * E + e) * per_pool: 1 + (t * E + e + 1) * per_pool])) for e in range(E)]
         for t in range(T)]
    )
    for (name, _), g in zip(pools.named_parameters(), grads[1:]):
        torch.testing.assert_close(g, restacked[name], rtol=0, atol=1e-10, msg=name)


def test_task_pools_with_attention_dropout_match_the_same_kept_weights():
    """With dropout the kept weights no longer sum to one; the value bias must follow them.
    Dropout's mask is drawn with the same seed in both computations."""
    pools, nodes, mask = _pools_and_inputs(dropout=0.3)
    pools.train()
    torch.manual_seed(5)
    tokens, _ = pools(nodes, mask)
    # reference: the same dropout masks, applied by hand to stand-alone pools' attention
    torch.manual_seed(5)
    probs = pools(nodes, mask, need_weights=True)[1]  # draws the same masks as above
    torch.manual_seed(5)
    keep = torch.nn.functional.dropout(torch.ones(E, B, S, T * H * Q, dtype=torch.float64), 0.3, True)
    keep = keep.view(E, B, S, T, H, Q).permute(1, 3, 0, 4, 5, 2)  # (B, T, E, H, Q, S)
    for t in range(T):
        for e in range(E):
            ref = pools.pool(t, e).eval()
            x = ref.norm_kv(nodes[e])
            v = ref.attn.kv(x).view(B, S, 2, H, D // H)[:, :, 1].transpose(1, 2)  # (B, H, S, d)
            att = ((probs[:, t, e] * keep[:, t, e]) @ v).transpose(1, 2).reshape(B, Q, D)
            before_ffn = ref.queries + ref.attn.out(att)
            # the FFN's dropout draws come after the attention's: compare the tokens before it
            torch.testing.assert_close(_before_ffn(pools, nodes, mask, t, e), before_ffn, rtol=0, atol=1e-12)
    assert tokens.shape == (B, T, E, Q, D) and torch.isfinite(tokens).all()


def _before_ffn(pools: TaskPools, nodes, mask, t: int, e: int):
    """The pool tokens before the FFN (seed 5): the forward with the FFN's output layer zeroed."""
    saved = pools.ffn_out_weight.detach().clone(), pools.ffn_out_bias.detach().clone()
    with torch.no_grad():
        pools.ffn_out_weight.zero_()
        pools.ffn_out_bias.zero_()
    torch.manual_seed(5)
    out = pools(nodes, mask)[0][:, t, e]
    with torch.no_grad():
        pools.ffn_out_weight.copy_(saved[0])
        pools.ffn_out_bias.copy_(saved[1])
    return out


def test_stack_pool_state_round_trips_stand_alone_pools():
    torch.manual_seed(1)
    singles = [[TaskAttentionPool(D, H, Q, dropout=d) for d in (0.0, 0.1)] for _ in range(T)]
    stacked = TaskPools(D, H, Q, T, E, dropout=0.0)
    stacked.load_state_dict(TaskPools.stack_pool_state([[p.state_dict() for p in row] for row in singles]))
    nodes = torch.randn(E, B, S, D)
    mask = torch.ones(B, S, dtype=torch.bool)
    tokens, _ = stacked.eval()(nodes, mask)
    for t in range(T):
        for e in range(E):
            torch.testing.assert_close(tokens[:, t, e], singles[t][e].eval()(nodes[e], mask)[0], rtol=1e-5, atol=1e-5)
    assert stacked.key_weight.shape == (T, E, D, D)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_task_pool_weights_are_a_distribution_over_real_tokens(dtype):
    pools, nodes, mask = _pools_and_inputs()
    pools = pools.to(dtype).eval()
    _, weights = pools(nodes.detach().to(dtype), mask, need_weights=True)
    assert weights.dtype == dtype
    assert torch.all(weights[~mask[:, None, None, None, None, :].expand_as(weights)] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
