"""The fused task pools equal the pools run one by one: outputs, weights and gradients."""

from __future__ import annotations

import torch

from graphevent.nn.layers.cross_attention import TaskAttentionPool, fused_task_pools


def test_fused_task_pools_equal_each_pool_alone():
    torch.manual_seed(0)
    pools = [TaskAttentionPool(16, heads=4, num_queries=2).double().eval() for _ in range(3)]
    with torch.no_grad():  # LayerNorm affine away from (1, 0), so the weight folding is exercised
        for p in pools:
            p.norm_kv.weight.uniform_(0.5, 1.5)
            p.norm_kv.bias.normal_(0.0, 0.3)
    nodes = torch.randn(5, 7, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 1:] = False  # an event with a single node

    fused = fused_task_pools(pools, nodes, mask, need_weights=True)
    alone = [p(nodes, mask, need_weights=True) for p in pools]
    for (tok_f, w_f), (tok_a, w_a) in zip(fused, alone):
        assert tok_f.shape == tok_a.shape == (5, 2, 16) and w_f.shape == w_a.shape == (5, 4, 2, 7)
        torch.testing.assert_close(tok_f, tok_a, rtol=0, atol=1e-12)
        torch.testing.assert_close(w_f, w_a, rtol=0, atol=1e-12)
    assert torch.all(fused[0][1][1, :, :, 4:] == 0) and torch.all(fused[0][1][3, :, :, 1:] == 0)

    weights = torch.randn(3, 5, 2, 16, dtype=torch.float64)
    params = [nodes, *(q for p in pools for q in p.parameters())]
    g_fused = torch.autograd.grad(sum((t * w).sum() for (t, _), w in zip(fused, weights)), params)
    g_alone = torch.autograd.grad(sum((t * w).sum() for (t, _), w in zip(alone, weights)), params)
    for a, b in zip(g_fused, g_alone):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
