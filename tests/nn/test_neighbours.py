"""Padded neighbour attention equals PyG's TransformerConv, and the per-event packing equals
``to_dense_batch``."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import TransformerConv
from torch_geometric.utils import to_dense_batch

from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer, NeighbourAttention
from graphevent.nn.layers.packing import EventPacking, index_counts


def test_event_packing_equals_to_dense_batch():
    batch = torch.tensor([0, 0, 0, 1, 3, 3])
    x = torch.randn(6, 4)
    packing = EventPacking.from_batch(batch, 4)
    dense, mask = to_dense_batch(x, batch, batch_size=4)
    assert torch.equal(packing.pack(x), dense) and torch.equal(packing.mask, mask)
    assert torch.equal(packing.unpack(dense), x)


def test_index_counts_equals_bincount():
    index = torch.tensor([3, 0, 3, 3, 1])
    assert index_counts(index, 6).tolist() == [1, 1, 0, 3, 0, 0]
    assert torch.equal(index_counts(index, 6), torch.bincount(index, minlength=6))
    assert index_counts(index[:0], 2).tolist() == [0, 0]


def _random_slots(gen: torch.Generator, n: int = 40, k: int = 6, full: bool = False):
    """``(idx, valid)`` (1, n, k): k neighbours for most nodes, fewer for some, none for the last
    two (``full``: k for every node, as in kNN of events with more than k nodes)."""
    idx = torch.zeros(1, n, k, dtype=torch.long)
    valid = torch.zeros(1, n, k, dtype=torch.bool)
    for i in range(n if full else n - 2):
        others = torch.tensor([j for j in range(n) if j != i])
        m = k if full or i % 5 else int(torch.randint(1, k, (1,), generator=gen))
        idx[0, i, :m] = others[torch.randperm(n - 1, generator=gen)[:m]]
        valid[0, i, :m] = True
    return idx, valid


@pytest.mark.parametrize("full", [False, True])
def test_neighbour_attention_equals_transformer_conv_with_gradients(full):
    """PyG's layer, its weights loaded by name (the state dict keys are PyG's), is the reference."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    conv = TransformerConv(16, 4, heads=4, edge_dim=5, root_weight=True).double()
    ours = NeighbourAttention(16, 4, 4, 5).double()
    ours.load_state_dict(conv.state_dict())
    idx, valid = _random_slots(gen, full=full)
    x = torch.randn(1, 40, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    slot_attr = torch.randn(1, 40, 6, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    edge_index = torch.stack([idx[valid], torch.arange(40)[None, :, None].expand_as(idx)[valid]])
    ref = conv(x[0], edge_index, slot_attr[valid])
    out = ours(x, idx, valid, slot_attr)[0]
    assert out.shape == ref.shape == (40, 16)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    if not full:  # nodes 38, 39 have no neighbour: only the root term
        torch.testing.assert_close(out[38:], conv.lin_skip(x[0, 38:]), rtol=0, atol=1e-12)

    weights = torch.randn(40, 16, generator=gen, dtype=torch.float64)
    grads_ref = torch.autograd.grad((ref * weights).sum(), [x, slot_attr, *conv.parameters()])
    grads = torch.autograd.grad((out * weights).sum(), [x, slot_attr, *ours.parameters()])
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_graph_transformer_layer_ignores_padding_and_other_events():
    """An event's output does not depend on the padding (any values) or on the other events of
    its batch: the layer run on one event alone gives the same rows."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    layer = GraphTransformerLayer(16, heads=2, edge_dim=5, global_attention=True).double().eval()
    x = torch.randn(2, 12, 16, generator=gen, dtype=torch.float64)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, :7], mask[1, :12] = True, True
    idx = torch.randint(0, 7, (2, 12, 4), generator=gen)
    idx[1] = torch.randint(0, 12, (12, 4), generator=gen)
    valid = mask[:, :, None].expand(-1, -1, 4).clone()
    e = torch.randn(2, 12, 4, 5, generator=gen, dtype=torch.float64)
    both = layer(x, idx, valid, e, mask)
    alone = layer(x[:1, :7], idx[:1, :7], valid[:1, :7], e[:1, :7], mask[:1, :7])
    torch.testing.assert_close(both[0, :7], alone[0], rtol=0, atol=1e-12)
    x2 = x.clone()
    x2[0, 7:] = 1e3  # padding of event 0: other values
    torch.testing.assert_close(layer(x2, idx, valid, e, mask)[:, :7], both[:, :7], rtol=0, atol=1e-12)
    assert torch.isfinite(layer(x, idx, valid & False, e, mask & False)).all()  # no valid node anywhere: finite
