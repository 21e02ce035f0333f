"""What the raw-input front ends of an exported model share: node cap, packing, scale/transform.

:class:`~graphevent.nn.layers.image_nodes.ImageNodes` (images) and
:class:`~graphevent.nn.layers.point_nodes.PointNodes` (a reader's points) each lay out one row of
candidate nodes per event with their occupancy and summed value; :class:`PaddedNodes` keeps the
``max_nodes`` of largest value as preprocessing's ``_truncate`` does, packs the kept ones in
candidate order into a padded batch and applies the data config's per-channel scale/transform.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PaddedNodes(nn.Module):
    """Node cap, packing and feature transform of a batch of candidate nodes.

    With ``max_nodes``, the occupied candidates of largest summed value are kept, equal values
    in candidate order (a stable sort; top-k under ONNX, whose ties go to the lower index);
    the kept nodes are packed in candidate order (a cumulative sum and a scatter, no sort) and
    scaled/transformed as the data config says.

    Args:
        scales: per channel scale (``node feature = transform(value * scale)``).
        transforms: per channel ``none`` or ``log1p``.
        max_nodes: the node cap (0: none).
        per_channel: features are one-hot channel + value (image ``per_channel`` mode), else
            one value column per channel.

    Subclasses set ``num_candidates``, the candidates per event when the input's shape fixes
    it (images), or leave it 0 (points) and give at least ``max(max_nodes, 2)`` candidate
    slots per event.
    """

    def __init__(self, scales, transforms, max_nodes: int = 0, per_channel: bool = False) -> None:
        super().__init__()
        self.channels = len(scales)
        self.max_nodes = int(max_nodes)
        self.per_channel = per_channel
        self.num_candidates = 0
        self.onnx = False  # set while exporting to ONNX: top-k instead of a stable sort
        self.register_buffer("scales", torch.tensor([float(s) for s in scales], dtype=torch.float32), persistent=False)
        self.register_buffer("log1p", torch.tensor([t == "log1p" for t in transforms]), persistent=False)

    def _cap(self, occ: Tensor, score: Tensor) -> Tensor:
        """Occupied candidates kept by the node cap (largest score, ties in node order)."""
        if self.max_nodes <= 0 or 0 < self.num_candidates <= self.max_nodes:
            return occ
        s = score.masked_fill(~occ, float("-inf"))
        if self.onnx:
            top = s.topk(self.max_nodes, dim=1, largest=True, sorted=True).indices
        else:
            top = s.sort(dim=1, descending=True, stable=True).indices[:, : self.max_nodes]
        chosen = torch.zeros_like(occ).scatter(1, top, torch.ones_like(top, dtype=torch.bool))
        return chosen & occ

    def _transform(self, feats: Tensor) -> Tensor:
        """``transform(value * scale)`` per channel (per_channel: of the value column, by the node's channel)."""
        if self.per_channel:
            onehot = feats[..., : self.channels]
            scale = (onehot * self.scales).sum(-1)
            log = (onehot * self.log1p.to(feats.dtype)).sum(-1) > 0.5
            v = feats[..., self.channels] * scale
            v = torch.where(log, self._log1p(v), v)
            return torch.cat([onehot, v[..., None]], dim=-1)
        v = feats * self.scales
        return torch.where(self.log1p, self._log1p(v), v)

    def _log1p(self, x: Tensor) -> Tensor:
        if not self.onnx:
            return torch.log1p(x)
        # ONNX has no Log1p: log(u) * x / (u - 1) with u = 1 + x is accurate to float32 rounding
        # (Goldberg's identity), x where u rounds to 1
        u = 1.0 + x
        d = u - 1.0
        safe = torch.where(d == 0.0, torch.ones_like(d), d)
        return torch.where(d == 0.0, x, torch.log(u) * (x / safe))

    def _padded_size(self, counts: Tensor, m: int) -> int:
        """The padded size: the most nodes of an event, at least 2 (attention layers specialise on
        one node; a padded slot is ignored), a size only the data decides."""
        top = counts.max().clamp(min=2)
        if torch.jit.is_scripting():
            return int(top)
        n = top.item()
        torch._check(n >= 2)
        torch._check(n <= m)
        return n

    def _pack(self, keep: Tensor, raw: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The kept candidates' rows of ``raw``, in candidate order, padded to the most nodes of
        an event (at least 2; padding holds candidate 0's row).

        Shapes:
            keep: (B, M) bool, raw: (B, M, F) -> rows (B, N, F), candidate index (B, N),
            mask (B, N), counts (B,) int64
        """
        b, m = keep.shape
        counts = keep.to(torch.int64).sum(1)
        slot = torch.where(keep, keep.to(torch.int64).cumsum(1) - 1, torch.full_like(counts[:, None], m).expand(b, m))
        cand = torch.arange(m, device=keep.device).expand(b, m)
        idx = torch.zeros(b, m + 1, dtype=torch.int64, device=keep.device).scatter(1, slot, cand)
        n = self._padded_size(counts, m)
        idx = idx[:, :n]
        mask = torch.arange(n, device=keep.device)[None, :] < counts[:, None]
        idx = torch.where(mask, idx, torch.zeros_like(idx))
        return raw.gather(1, idx[..., None].expand(b, n, raw.shape[-1])), idx, mask, counts
