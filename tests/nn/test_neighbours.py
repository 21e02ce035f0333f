"""Dense neighbour tables: layout known by hand, and the dense attention equals PyG's TransformerConv."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import TransformerConv
from torch_geometric.utils import to_dense_batch

from graphevent.nn.layers.graph_transformer_layer import neighbour_attention
from graphevent.nn.layers.neighbours import EventPacking, NeighbourTable, batch_tables, index_counts


def test_neighbour_table_by_hand():
    # node 0 <- 2, 1;  node 1 <- 0;  node 2: no incoming edge;  edges deliberately unsorted
    edge_index = torch.tensor([[0, 2, 1], [1, 0, 0]])
    table = NeighbourTable.from_edge_index(edge_index, 3)
    assert table.source.tolist() == [[2, 1], [0, 0], [0, 0]]
    assert table.valid.tolist() == [[True, True], [True, False], [False, False]]
    assert table.slot.tolist() == [2, 0, 1] and not table.full
    assert NeighbourTable.from_edge_index(torch.tensor([[1, 2, 0], [0, 1, 2]]), 3).full  # one edge each
    values = torch.tensor([[10.0], [20.0], [30.0]])
    dense = table.edges_to_slots(values)
    assert dense[..., 0].tolist() == [[20.0, 30.0], [10.0, 0.0], [0.0, 0.0]]
    assert torch.equal(dense.reshape(-1, 1)[table.slot], values)  # slot of each edge, in edge order


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


@pytest.mark.parametrize("full", [False, True])
def test_batch_tables_equal_the_tables_built_apart(full):
    gen = torch.Generator().manual_seed(1)
    edge_index = _random_graph(gen, full=full)
    batch = torch.tensor([0] * 15 + [1] * 5 + [3] * 20)  # event 2 has no nodes
    for packing in (True, False):
        table, packed = batch_tables(edge_index, batch, 4, packing=packing)
        ref = NeighbourTable.from_edge_index(edge_index, 40)
        assert table.full == ref.full == full
        for name in ("source", "valid", "slot"):
            assert torch.equal(getattr(table, name), getattr(ref, name))
        if packing:
            ref_packing = EventPacking.from_batch(batch, 4)
            _, mask = to_dense_batch(torch.zeros(40, 1), batch, batch_size=4)
            assert packed.mask.shape == (4, 20) and torch.equal(packed.mask, mask)
            assert torch.equal(packed.index, ref_packing.index) and torch.equal(packed.mask, ref_packing.mask)
        else:
            assert packed is None
    no_edges, _ = batch_tables(edge_index[:, :0], batch, 4, packing=False)
    assert no_edges.source.shape == (40, 1) and not no_edges.valid.any() and not no_edges.full


def _random_graph(gen: torch.Generator, n: int = 40, k: int = 6, full: bool = False):
    """k incoming edges for most nodes, fewer for some, none for two (``full``: k for
    every node, as in kNN graphs); edges shuffled."""
    src, dst = [], []
    for i in range(n if full else n - 2):
        deg = k if full or i % 5 else int(torch.randint(1, k, (1,), generator=gen))
        nbrs = torch.randperm(n, generator=gen)[: deg + 1]
        nbrs = nbrs[nbrs != i][:deg]
        src += nbrs.tolist()
        dst += [i] * len(nbrs)
    edge_index = torch.tensor([src, dst])
    return edge_index[:, torch.randperm(edge_index.size(1), generator=gen)]


@pytest.mark.parametrize("full", [False, True])
def test_neighbour_attention_equals_transformer_conv_with_gradients(full):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    conv = TransformerConv(16, 4, heads=4, edge_dim=5, root_weight=True).double()
    edge_index = _random_graph(gen, full=full)
    x = torch.randn(40, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    edge_attr = torch.randn(edge_index.size(1), 5, generator=gen, dtype=torch.float64, requires_grad=True)

    ref = conv(x, edge_index, edge_attr)
    table = NeighbourTable.from_edge_index(edge_index, 40)
    assert table.full == full and table.source.shape == (40, 6)
    out = neighbour_attention(conv, x, table, table.edges_to_slots(edge_attr))
    assert out.shape == ref.shape == (40, 16)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    if not full:  # nodes 38, 39 have no incoming edge: only the root term
        torch.testing.assert_close(out[38:], conv.lin_skip(x[38:]), rtol=0, atol=1e-12)

    weights = torch.randn(40, 16, generator=gen, dtype=torch.float64)
    grads_ref = torch.autograd.grad((ref * weights).sum(), [x, edge_attr, *conv.parameters()])
    grads = torch.autograd.grad((out * weights).sum(), [x, edge_attr, *conv.parameters()])
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
