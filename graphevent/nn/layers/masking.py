"""Choosing which nodes of each event to hide for masked-autoencoder pretraining."""

from __future__ import annotations

import torch
from torch import Tensor

from graphevent.nn.layers.packing import EventPacking
from graphevent.utils.geometry import is_periodic, wrap_deltas

_M31 = 0x7FFFFFFF


def hashed_uniform(event_key: Tensor, local_index: Tensor, seed: int = 0) -> Tensor:
    """Deterministic pseudo-random numbers in [0, 1) from (event, node) integers.

    The same event always gets the same numbers whatever batch it is in, so evaluation-time
    masking is reproducible and independent of batching. Integer mixing stays below 2**62
    (no int64 overflow) and is identical on CPU and CUDA.

    Shapes:
        event_key: (N,) int64, local_index: (N,) int64 -> (N,) float32
    """
    h = ((event_key & _M31) * 1_000_003 + local_index * 7_919 + seed * 104_729) & _M31
    for _ in range(3):
        h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & _M31
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).float() / float(1 << 24)


def hidden_counts(counts: Tensor, ratio: float) -> Tensor:
    """Nodes to hide per event: ``round(ratio * n)``, kept within ``[1, n - 1]`` when n >= 2.

    Shapes:
        counts: (B,) int64 -> (B,) int64
    """
    n_hide = torch.round(counts.double() * ratio).long()
    n_hide = torch.minimum(n_hide.clamp(min=1), counts - 1)
    return n_hide.clamp(min=0)


def rank_within_event(score: Tensor, packing: EventPacking) -> Tensor:
    """Rank (0 = smallest) of each node's ``score`` among the nodes of its event; equal
    scores rank in node order.

    Shapes:
        score: (N,), packing: (B, M) -> (N,) int64
    """
    dense = packing.pack(score.float()[:, None], fill=float("inf"))[..., 0]  # (B, M), padding last
    order = dense.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(dense.size(1), device=score.device).expand_as(order))
    return ranks.view(-1)[packing.index]


def sample_hidden_nodes(
    pos: Tensor,
    batch: Tensor,
    noise: Tensor,
    ratio: float,
    mode: str = "random",
    num_patches: int = 4,
    num_events: int | None = None,
    periods: tuple[float, float] | None = None,
) -> Tensor:
    """Pick ``round(ratio * n)`` nodes of every event to hide (see :func:`hidden_counts`).

    * ``random``: the nodes with the smallest ``noise``.
    * ``patch``: contiguous patches: ``num_patches`` centre nodes per event (smallest
      ``noise``) and, around them, the nodes nearest in (eta, phi) to any centre; the
      hidden nodes form up to ``num_patches`` spatially contiguous blobs.

    Nothing is modified in place; callers get a new boolean mask. The events are laid out
    once in a padded ``(B, M)`` packing, the only value read back to the host being ``M``.

    Args:
        pos: (eta, phi) of each node.
        batch: event index of each node (sorted).
        noise: one uniform number per node (``torch.rand`` with a generator when
            training, :func:`hashed_uniform` for reproducible evaluation).
        ratio: fraction of nodes to hide, in (0, 1).
        mode: ``random`` or ``patch``.
        num_patches: patch centres per event (``patch`` mode).
        num_events: number of events ``B`` (default: read from ``batch``).
        periods: the dataset's periodic axes (``DatasetInfo.periods``): patches wrap around
            them (a patch at phi = pi continues at -pi).

    Shapes:
        pos: (N, 2), batch: (N,), noise: (N,) -> hidden (N,) bool
    """
    if num_events is None:
        num_events = int(batch.max()) + 1 if batch.numel() else 0
    packing = EventPacking.from_batch(batch, num_events)
    n_hide = hidden_counts(packing.mask.sum(1), ratio)
    if mode == "random":
        score = noise
    else:
        dense_noise = packing.pack(noise.float()[:, None], fill=float("inf"))[..., 0]  # (B, M)
        centre = dense_noise.argsort(dim=1, stable=True)[:, :num_patches]  # (B, P): smallest noise first
        dense_pos = packing.pack(pos.float())  # (B, M, 2)
        centre_pos = dense_pos.gather(1, centre[..., None].expand(-1, -1, dense_pos.size(-1)))
        is_centre = packing.mask.gather(1, centre)  # False where an event has fewer than P nodes
        # pairwise differences, not cdist's matmul path, whose rounding depends on the padded
        # layout: an event gets the same mask in any batch
        if is_periodic(periods):
            d = wrap_deltas(dense_pos[:, :, None, :] - centre_pos[:, None, :, :], periods).norm(dim=-1)
        else:
            d = torch.cdist(dense_pos, centre_pos, compute_mode="donot_use_mm_for_euclid_dist")
        d = d.masked_fill(~is_centre[:, None, :], float("inf"))
        score = d.min(dim=2).values.view(-1)[packing.index] + 1e-6 * noise  # nearest centre; noise breaks ties
    return rank_within_event(score, packing) < n_hide[batch]
