"""Layers against direct computations and values known by hand."""

from __future__ import annotations

import math

import torch
from torch import nn

from graphevent.nn.layers import (
    MLP,
    EdgeConvBlock,
    FourierPosition,
    MultiHeadAttention,
    Standardize,
    chamfer_distance,
)
from graphevent.nn.layers.cross_attention import cross_group_mask
from graphevent.nn.reconstruction import Reconstruction


def test_edge_conv_block_equals_the_edge_mlp_on_concatenated_pairs():
    torch.manual_seed(0)
    block = EdgeConvBlock(3, [5, 4]).eval()
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm1d)):  # non-trivial running stats
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(6, 3)
    nbrs = {0: [1, 2], 1: [0], 2: [3, 4, 5], 5: [0]}  # nodes 3 and 4 have none; node 6 is padding
    idx, valid = torch.zeros(1, 7, 3, dtype=torch.long), torch.zeros(1, 7, 3, dtype=torch.bool)
    for i, js in nbrs.items():
        idx[0, i, : len(js)], valid[0, i, : len(js)] = torch.tensor(js), True
    mask = torch.tensor([[True] * 6 + [False]])
    out = block(torch.cat([x, torch.full((1, 3), 7.0)])[None], idx, valid, mask)[0, :6]

    # Theta [x_i, x_j - x_i] with Theta = [A + B, B] equals A x_i + B x_j
    a, b = block.lin_i.weight, block.lin_j.weight
    theta = torch.cat([a + b, b], dim=1)
    expected = torch.zeros(6, 4)
    for i, js in nbrs.items():
        pairs = torch.stack([torch.cat([x[i], x[j] - x[i]]) for j in js])
        expected[i] = block.edge_mlp(pairs @ theta.T).mean(0)
    expected = torch.relu(expected + block.shortcut(x))
    assert out.shape == (6, 4)
    assert torch.allclose(out, expected, atol=1e-6)


def test_edge_conv_block_trains_on_valid_edges_and_nodes_only():
    """In training, BatchNorm's batch statistics are those of the real edges and nodes: padding
    nodes (any values, any amount; no valid slot, as dense_knn gives them) change neither the
    output at valid nodes nor the running stats."""
    torch.manual_seed(1)
    block = EdgeConvBlock(3, [4, 5]).train()
    x = torch.randn(1, 4, 3)
    idx = torch.tensor([[[1, 2], [0, 2], [0, 1], [0, 0]]])
    valid = torch.tensor([[[True, True], [True, True], [True, False], [False, False]]])
    mask = torch.tensor([[True, True, True, False]])
    out = block(x, idx, valid, mask)
    stats = [m.running_mean.clone() for m in block.modules() if isinstance(m, nn.BatchNorm1d)]
    for m in block.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
    padded = torch.cat([x, torch.full((1, 3, 3), 50.0)], dim=1)
    out2 = block(padded, torch.cat([idx, torch.zeros(1, 3, 2, dtype=torch.long)], 1),
                 torch.cat([valid, torch.zeros(1, 3, 2, dtype=torch.bool)], 1), torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1))
    assert torch.allclose(out[0, :3], out2[0, :3], atol=1e-6)
    assert all(torch.allclose(a, m.running_mean) for a, m in zip(stats, (m for m in block.modules() if isinstance(m, nn.BatchNorm1d))))
    assert out[0, :3].abs().sum() > 0  # a real output, not zeros


def test_chamfer_distance_known_by_hand_and_padding_ignored():
    pred = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]]])
    pred_mask = torch.tensor([[True, True, False]])  # third slot is padding
    target = torch.tensor([[[0.0, 1.0], [3.0, 0.0]]])
    target_mask = torch.tensor([[True, True]])
    cd, nearest, dist = chamfer_distance(pred, pred_mask, target, target_mask)
    # target->pred: (0,1)->(0,0): 1; (3,0)->(2,0): 1 => mean 1; pred->target: (0,0)->(0,1): 1; (2,0)->(3,0): 1 => 1
    assert torch.allclose(cd, torch.tensor([2.0]))
    assert nearest.tolist() == [[0, 1]] and torch.allclose(dist, torch.tensor([[1.0, 1.0]]))
    same, _, _ = chamfer_distance(target, target_mask, target, target_mask)
    assert same.item() == 0.0


def test_cross_group_mask_lets_tokens_see_other_tasks_and_the_other_encoder():
    groups = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])  # (task, encoder)
    allowed = cross_group_mask(groups)
    assert allowed.tolist() == [
        [False, True, True, True],
        [True, False, True, True],
        [True, True, False, True],
        [True, True, True, False],
    ]
    one = cross_group_mask(torch.tensor([[0, 0], [0, 0]]))  # one task, one encoder: itself
    assert one.tolist() == [[True, True], [True, True]]
    two_tasks = cross_group_mask(torch.tensor([[0, 0], [1, 0]]))
    assert two_tasks.tolist() == [[False, True], [True, False]]


def test_multi_head_attention_matches_a_direct_computation_and_masks_keys():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, heads=2)
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    allowed = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])[:, None, :]
    out, w = attn(q, kv, allowed, need_weights=True)
    assert w.shape == (2, 2, 3, 5)
    assert torch.all(w[0, ..., 3:] == 0) and torch.allclose(w.sum(-1), torch.ones(2, 2, 3))
    qh = attn.q(q).view(2, 3, 2, 4).transpose(1, 2)
    k, v = attn.kv(kv).view(2, 5, 2, 2, 4).permute(2, 0, 3, 1, 4)
    s = qh @ k.transpose(-1, -2) / math.sqrt(4)
    s = s.masked_fill(~allowed[:, None], float("-inf")).softmax(-1)
    expected = attn.out((s @ v).transpose(1, 2).reshape(2, 3, 8))
    assert torch.allclose(out, expected, atol=1e-6)


def test_standardize_round_trip_and_missing_stats():
    norm = Standardize(["a", "b"], {"a": {"mean": 2.0, "std": 4.0}})
    x = torch.tensor([[6.0, 3.0]])
    assert norm(x).tolist() == [[1.0, 3.0]]  # b has no stats: unchanged
    assert torch.equal(norm.inverse(norm(x)), x)


def test_fourier_position_and_mlp_shapes():
    enc = FourierPosition(2, num_freqs=3)
    out = enc(torch.tensor([[0.0, 0.75]]))
    assert out.shape == (1, enc.out_channels) == (1, 14)
    assert torch.allclose(out[0, :2], torch.tensor([0.0, 0.75]))
    # layout [p, sin(coord 0 octaves), sin(coord 1 octaves), cos(...)]: sin(pi * 0.75 / 1.5) = 1
    assert torch.allclose(out[0, 2 + 3], torch.tensor(1.0)) and torch.allclose(out[0, 2 + 6 + 3], torch.tensor(0.0), atol=1e-6)
    assert MLP(4, [8, 8], 2)(torch.randn(5, 4)).shape == (5, 2)


def test_reconstruction_to_images_bins_points_like_the_preprocessing():
    rec = Reconstruction(
        pos=torch.tensor([[0.0, 0.0], [0.1, -0.1], [0.1, -0.1], [5.0, 5.0]]),
        values=torch.tensor([[1.0], [2.0], [3.0], [4.0]]),
        batch=torch.tensor([0, 0, 1, 1]),
        num_events=2,
    )
    img = rec.to_images((0.1, 0.1), (3, 3))  # centre pixel (1, 1) is (0, 0); row = eta, col = phi
    assert img.shape == (2, 1, 3, 3)
    assert img[0, 0].tolist() == [[0, 0, 0], [0, 1, 0], [2, 0, 0]]
    assert img[1, 0].tolist() == [[0, 0, 0], [0, 0, 0], [3, 0, 4]]  # (5, 5) clipped to the corner
