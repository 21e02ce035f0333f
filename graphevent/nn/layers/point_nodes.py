"""A reader's points -> padded nodes, inside a model: preprocessing's hit selection as torch ops.

:class:`PointNodes` is :func:`~graphevent.data.transforms.image_to_points.points_from_hits`
(thresholds, node cap) followed by the data config's scale/transform and the wrap of the
positions along periodic axes, on a padded batch of the points a point-form reader
(``particles``, ``root_hits``) yields. An exported model that starts with it
(``graphevent export --input points``) turns those points into scores without graphevent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphevent.nn.layers.image_nodes import numpy_row_sum
from graphevent.nn.layers.padded_nodes import PaddedNodes
from graphevent.utils.geometry import is_periodic, wrap_delta


class PointNodes(PaddedNodes):
    """The nodes preprocessing makes of each event's points, padded.

    Per event, over its first ``n_points`` rows (the rest is padding, ignored whatever it
    holds): non-finite values become 0 (``bad_values: zero``; ``bad`` flags the event); a
    point is kept where a channel's value (its magnitude, for signed channels) exceeds the
    channel's threshold, with the values at or below threshold set to 0; with ``max_nodes``,
    the kept points of largest summed value (summed in numpy's order), equal values in point
    order; then the features are ``transform(value * scale)`` per channel and the positions
    are wrapped into each periodic axis's range (:func:`~graphevent.utils.geometry.wrap_delta`),
    as preprocessing does. The candidate row of an event is its points followed by
    ``max(max_nodes, 2)`` empty slots, so the top-k has a static k and at least two slots
    exist however few points the batch holds.

    Args:
        thresholds: per channel zero-suppression threshold.
        signed: per channel, occupancy is ``|value| > threshold``.
        scales: per channel scale (``node feature = transform(value * scale)``).
        transforms: per channel ``none`` or ``log1p``.
        max_nodes: the node cap (0: none).
        periods: (eta, phi) periods, 0 where an axis does not wrap; ``None``: nothing wraps.

    Shapes:
        points: (B, P, C + 2) float32 (channel values, then eta, phi), n_points: (B,) int64
        -> features (B, N, C), positions (B, N, 2), mask (B, N), counts (B,) int64, bad (B,)
        bool, with N the most nodes of an event in the batch (at least 2)
    """

    def __init__(self, thresholds, signed, scales, transforms, max_nodes: int = 0, periods=None) -> None:
        super().__init__(scales, transforms, max_nodes)
        c = self.channels
        self.register_buffer("thresholds", torch.tensor([float(t) for t in thresholds], dtype=torch.float32), persistent=False)
        self.register_buffer("signed", torch.tensor([bool(s) for s in signed]), persistent=False)
        self.any_signed = bool(self.signed.any())
        if len(self.thresholds) != c or len(self.signed) != c:
            raise ValueError(f"PointNodes: {len(thresholds)} thresholds and {len(signed)} signed flags for {c} channels")
        self.periods = (float(periods[0]), float(periods[1])) if is_periodic(periods) else (0.0, 0.0)
        self.slots = max(self.max_nodes, 2)

    def forward(self, points: Tensor, n_points: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        x = points.float()
        b, p = x.shape[0], x.shape[1]
        c = self.channels
        valid = (torch.arange(p, device=x.device)[None, :] < n_points[:, None])[..., None]
        values = x[..., :c]
        finite = torch.isfinite(values)
        bad = (valid & ~finite).flatten(1).any(1)
        values = torch.where(valid & finite, values, torch.zeros_like(values))
        mag = torch.where(self.signed, values.abs(), values) if self.any_signed else values
        above = (mag > self.thresholds) & valid
        values = torch.where(above, values, torch.zeros_like(values))
        occupied = above.any(-1)
        score = numpy_row_sum([values[..., i] for i in range(c)])
        raw = torch.cat([values, torch.where(valid, x[..., c:c + 2], torch.zeros_like(x[..., c:c + 2]))], dim=-1)
        raw = torch.cat([raw, torch.zeros(b, self.slots, c + 2, dtype=x.dtype, device=x.device)], dim=1)
        occupied = torch.cat([occupied, torch.zeros(b, self.slots, dtype=torch.bool, device=x.device)], dim=1)
        score = torch.cat([score, torch.zeros(b, self.slots, dtype=x.dtype, device=x.device)], dim=1)
        rows, _, mask, counts = self._pack(self._cap(occupied, score), raw)
        feats = self._transform(rows[..., :c]).masked_fill(~mask[..., None], 0.0)
        pos = torch.stack([wrap_delta(rows[..., c], self.periods[0]), wrap_delta(rows[..., c + 1], self.periods[1])], dim=-1)
        return feats, pos.masked_fill(~mask[..., None], 0.0), mask, counts, bad

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, thresholds={self.thresholds.tolist()}, "
                f"max_nodes={self.max_nodes}, periods={self.periods})")
