"""Positions of events whose (eta, phi) wrap: the event's own frame along a periodic axis.

On a full detector a rotation in phi is an exact symmetry of an event. Distances and shifts
already wrap (:func:`graphevent.utils.geometry.wrap_delta`), so kNN graphs and edge features
do not change under a rotation; a model that also reads *absolute* positions as features
(ParticleNet's and EdgeConv's ``(eta, phi) / pos_scale`` columns, the Fourier position
encoding of ``masked_gt``, the sparse-convolution sites) reads them in the event's frame:
each periodic coordinate measured from the event's circular mean along that axis,

.. math::
    \\bar\\phi = \\tfrac{P}{2\\pi}\\,\\mathrm{atan2}\\Bigl(\\sum_i \\sin\\tfrac{2\\pi\\phi_i}{P},
    \\sum_i \\cos\\tfrac{2\\pi\\phi_i}{P}\\Bigr), \\qquad \\phi_i' = \\mathrm{wrap}(\\phi_i - \\bar\\phi)

so a rotated event gives the same features (to float rounding; an event spread evenly
around the circle has no stable mean). Non-periodic axes and datasets without periodic axes
(jet crops) are returned unchanged, the same tensor.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from graphevent.utils.geometry import is_periodic, wrap_delta


def _centre(sin_sum: Tensor, cos_sum: Tensor, period: float) -> Tensor:
    """The circular mean from float64 sums; ``atan2`` in float32 (ONNX Runtime has no float64 ``Atan``)."""
    return torch.atan2(sin_sum.float(), cos_sum.float()) * (period / (2.0 * math.pi))


def event_frame(
    pos: Tensor, batch: Tensor, num_events: Optional[int], periods: Optional[Sequence[float]], of: Optional[Tensor] = None
) -> Tensor:
    """``pos`` with each periodic axis measured from its event's circular mean (a new tensor;
    ``pos`` itself when nothing wraps).

    Args:
        pos: positions to express in the frame.
        batch: event of each row of ``pos``.
        num_events: ``B`` (``None``: read from ``batch``).
        periods: per axis, its period (0: does not wrap); ``None``: nothing wraps.
        of: ``(positions, batch)`` whose mean defines each event's frame (default: ``pos``
            itself), e.g. the visible nodes of a masked event, to put hidden ones in their frame.

    Shapes:
        pos: (N, D), batch: (N,) -> (N, D)
    """
    if not is_periodic(periods):
        return pos
    ref, ref_batch = (pos, batch) if of is None else of
    out = pos * 1
    for axis, period in enumerate(periods):
        if period and axis < pos.size(-1):
            ang = ref[:, axis].detach().float() * (2.0 * math.pi / period)
            s = scatter(torch.sin(ang).double(), ref_batch, 0, dim_size=num_events, reduce="sum")
            c = scatter(torch.cos(ang).double(), ref_batch, 0, dim_size=num_events, reduce="sum")
            centre = _centre(s, c, period).to(pos.dtype)[batch]
            out[:, axis] = wrap_delta(pos[:, axis] - centre, period)
    return out


def dense_event_frame(positions: Tensor, mask: Tensor, periods: Optional[Tuple[float, float]]) -> Tensor:
    """:func:`event_frame` on padded (eta, phi) events, the exported models' form (padding
    ignored; compiles with TorchScript). ``periods``: (eta, phi), 0 where an axis does not wrap.

    Shapes:
        positions: (B, N, 2), mask: (B, N) -> (B, N, 2)
    """
    if periods is None:
        return positions
    w = mask.to(torch.float64)
    eta = _dense_axis(positions[..., 0], w, periods[0])
    phi = _dense_axis(positions[..., 1], w, periods[1])
    return torch.stack([eta, phi], dim=-1)


def _dense_axis(x: Tensor, w: Tensor, period: float) -> Tensor:
    if period == 0.0:
        return x
    ang = x.float() * (2.0 * math.pi / period)
    centre = _centre((torch.sin(ang).double() * w).sum(1), (torch.cos(ang).double() * w).sum(1), period)
    return wrap_delta(x - centre.to(x.dtype)[:, None], period)
