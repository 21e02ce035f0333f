"""Padded ``(B, N, D)`` kNN and edge geometry: the same neighbours and numbers as the flat ones."""

from __future__ import annotations

import torch

from graphevent.evaluate.export import example_inputs
from graphevent.nn.layers.dense_knn import dense_edge_geometry, dense_knn, squared_position_distances
from graphevent.nn.layers.knn import edge_features, knn_graph

SIZES = [1, 60, 5, 9, 33]


def _flat(pos: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded positions -> flat nodes and their event index (PyG batching)."""
    event = torch.arange(mask.shape[0])[:, None].expand_as(mask)
    return pos[mask], event[mask]


def _dense_edges(idx: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(source, target) flat node indices of dense_knn's valid slots, in slot order."""
    counts = mask.sum(1)
    start = torch.cumsum(counts, 0) - counts
    src = start[:, None, None] + idx
    tgt = (start[:, None] + torch.arange(mask.shape[1])[None]).unsqueeze(-1).expand_as(idx)
    return torch.stack([src[valid], tgt[valid]])


def test_squared_position_distances_keep_mirrored_and_swapped_lattice_offsets_equal():
    a, b = 3 * 0.0174, 4 * 0.0174
    pos = torch.tensor([[[0.0, 0.0], [a, b], [b, a], [-a, b], [a, -b], [-b, -a]]])
    d = squared_position_distances(pos)[0, 0, 1:]
    assert torch.equal(d, d[:1].expand(5))  # bit for bit, whatever the rounding of a and b


def test_dense_knn_equals_knn_graph_on_lattice_events():
    """The same neighbours, in the same order, as the graph models' kNN (ties by node index)."""
    for seed in range(3):
        _, pos, mask = example_inputs(3, SIZES, seed=seed)
        flat, event = _flat(pos, mask)
        want = knn_graph(flat, event, 8, len(SIZES))
        idx, valid = dense_knn(pos, mask, 8, stable=True)
        assert torch.equal(_dense_edges(idx, valid, mask), want)


def test_dense_edge_geometry_equals_edge_features():
    _, pos, mask = example_inputs(3, SIZES, seed=5)
    flat, event = _flat(pos, mask)
    idx, valid = dense_knn(pos, mask, 8, stable=True)
    want = edge_features(flat, _dense_edges(idx, valid, mask))
    torch.testing.assert_close(dense_edge_geometry(pos, idx)[valid], want, rtol=0, atol=1e-7)
