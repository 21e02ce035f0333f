"""Where each node of a PyG batch sits in a padded per-event ``(B, M)`` layout, built once per batch."""

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
