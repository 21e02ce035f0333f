"""Fixed-width tables of a graph's incoming edges and of each event's nodes, built once per batch.

kNN graphs give every node the same number of incoming edges (``k``, fewer only in events
of ``<= k`` nodes), so attention over neighbours can run on dense ``(N, K, ...)`` tensors:
one softmax and one sum over the ``K`` axis instead of PyG's scatter softmax and scatter
aggregation, with fewer kernels and no scatter/gather pairs in the backward pass. The
tables are built once per forward pass and shared by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def index_counts(index: Tensor, size: int) -> Tensor:
    """How often each of ``0 .. size - 1`` occurs in ``index`` (all entries below ``size``).

    Equals ``torch.bincount(index, minlength=size)``, whose CUDA version reads the index's
    minimum and maximum back to the host (two syncs); this one reads nothing.

    Shapes:
        index: (E,) int64 -> (size,) int64
    """
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(0, index, torch.ones_like(index))


@dataclass(frozen=True)
class NeighbourTable:
    """The incoming edges of every node as a padded ``(N, K)`` table.

    Attributes:
        source: ``(N, K)`` int64 source node ``j`` of each slot of target node ``i``
            (0 in empty slots; mask them with ``valid``).
        valid: ``(N, K)`` bool, which slots hold an edge.
        slot: ``(E,)`` int64 flat slot ``i * K + s`` of each edge of the ``edge_index``
            the table was built from.
        full: every node has ``K`` incoming edges (no empty slot), as in a kNN graph of
            events with more than ``k`` nodes; attention can then skip masking.

    Slots of a node follow the edges' order in ``edge_index``.
    """

    source: Tensor
    valid: Tensor
    slot: Tensor
    full: bool = False

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> NeighbourTable:
        """Table of ``edge_index`` (row 0 source ``j``, row 1 target ``i``). One host sync
        (the width ``K`` and whether every node has ``K`` edges).

        Shapes:
            edge_index: (2, E) -> source, valid: (N, K); slot: (E,)
        """
        degree = index_counts(edge_index[1], num_nodes)
        most, least = _host_extremes(degree)
        return cls.from_degree(edge_index, degree, most, least)

    @classmethod
    def from_degree(cls, edge_index: Tensor, degree: Tensor, most: int, least: int) -> NeighbourTable:
        """Table of ``edge_index`` given each node's in-degree and its maximum and minimum
        (already on the host, e.g. read together with other sizes: :func:`batch_tables`)."""
        src, dst = edge_index[0], edge_index[1]
        num_nodes, num_edges = degree.numel(), dst.numel()
        width = max(most, 1)
        order = torch.argsort(dst, stable=True)
        first = torch.cumsum(degree, 0) - degree  # (N,) position of each node's first edge in order
        rank = torch.empty_like(order)
        rank[order] = torch.arange(num_edges, device=dst.device)
        slot = dst * width + (rank - first[dst])
        source = torch.zeros(num_nodes * width, dtype=torch.long, device=dst.device)
        source[slot] = src
        valid = torch.zeros(num_nodes * width, dtype=torch.bool, device=dst.device)
        valid[slot] = True
        return cls(source.view(num_nodes, width), valid.view(num_nodes, width), slot, full=least == width)

    def edges_to_slots(self, values: Tensor) -> Tensor:
        """Per-edge values in table layout, zeros in empty slots.

        Shapes:
            values: (E, F) -> (N, K, F)
        """
        n, k = self.source.shape
        dense = values.new_zeros(n * k, values.size(-1))
        return dense.index_copy(0, self.slot, values).view(n, k, -1)


@dataclass(frozen=True)
class EventPacking:
    """Where each node sits in a padded ``(B, M)`` per-event layout (as ``to_dense_batch``).

    Attributes:
        index: ``(N,)`` flat position ``b * M + m`` of each node.
        mask: ``(B, M)`` bool, which positions hold a node.
    """

    index: Tensor
    mask: Tensor

    @classmethod
    def from_batch(cls, batch: Tensor, num_events: int) -> EventPacking:
        """Packing of the sorted event vector ``batch``. One host sync (``M``).

        Shapes:
            batch: (N,) -> index: (N,), mask: (B, M)
        """
        counts = index_counts(batch, num_events)
        return cls.from_counts(batch, counts, _host_extremes(counts)[0])

    @classmethod
    def from_counts(cls, batch: Tensor, counts: Tensor, most: int) -> EventPacking:
        """Packing given the nodes per event and their maximum (already on the host)."""
        width = max(most, 1)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(batch.numel(), device=batch.device) - first[batch]
        index = batch * width + local
        mask = torch.zeros(counts.numel() * width, dtype=torch.bool, device=batch.device)
        mask[index] = True
        return cls(index, mask.view(counts.numel(), width))

    def pack(self, x: Tensor, fill: float = 0.0) -> Tensor:
        """``(N, D) -> (B, M, D)``, ``fill`` at padding."""
        b, m = self.mask.shape
        return x.new_full((b * m, x.size(-1)), fill).index_copy(0, self.index, x).view(b, m, -1)

    def unpack(self, dense: Tensor) -> Tensor:
        """``(B, M, D) -> (N, D)``: the rows that hold nodes."""
        return dense.reshape(-1, dense.size(-1))[self.index]


def _host_extremes(*counts: Tensor) -> list[int]:
    """``[max, min]`` of each tensor (0, 0 if empty), read to the host in one sync."""
    parts = [torch.stack([c.max(), c.min()]) if c.numel() else c.new_zeros(2) for c in counts]
    return torch.cat(parts).tolist()


def batch_tables(
    edge_index: Tensor, batch: Tensor, num_events: int, packing: bool = True
) -> tuple[NeighbourTable, EventPacking | None]:
    """The neighbour table of ``edge_index`` and (if ``packing``) the per-event packing of
    ``batch``, with one host sync for both: the same tables as
    :meth:`NeighbourTable.from_edge_index` and :meth:`EventPacking.from_batch`.

    Shapes:
        edge_index: (2, E), batch: (N,) sorted -> NeighbourTable (N, K), EventPacking (B, M)
    """
    if not packing:
        return NeighbourTable.from_edge_index(edge_index, batch.numel()), None
    degree = index_counts(edge_index[1], batch.numel())
    counts = index_counts(batch, num_events)
    most, least, most_nodes, _ = _host_extremes(degree, counts)
    return NeighbourTable.from_degree(edge_index, degree, most, least), EventPacking.from_counts(batch, counts, most_nodes)
