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
        src, dst = edge_index[0], edge_index[1]
        num_edges = dst.numel()
        degree = torch.bincount(dst, minlength=num_nodes)
        most, least = torch.stack([degree.max(), degree.min()]).tolist() if num_edges and num_nodes else (0, 0)
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
        counts = torch.bincount(batch, minlength=num_events)
        width = max(int(counts.max()), 1) if batch.numel() else 1
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(batch.numel(), device=batch.device) - first[batch]
        index = batch * width + local
        mask = torch.zeros(num_events * width, dtype=torch.bool, device=batch.device)
        mask[index] = True
        return cls(index, mask.view(num_events, width))

    def pack(self, x: Tensor) -> Tensor:
        """``(N, D) -> (B, M, D)``, zeros at padding."""
        b, m = self.mask.shape
        return x.new_zeros(b * m, x.size(-1)).index_copy(0, self.index, x).view(b, m, -1)

    def unpack(self, dense: Tensor) -> Tensor:
        """``(B, M, D) -> (N, D)``: the rows that hold nodes."""
        return dense.reshape(-1, dense.size(-1))[self.index]
