"""Chamfer distance between the point sets of each event, with padding masks."""

from __future__ import annotations

import torch
from torch import Tensor


def chamfer_distance(
    pred: Tensor, pred_mask: Tensor, target: Tensor, target_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Symmetric squared Chamfer distance per event.

    .. math::
        \mathrm{CD}(P, T) = \frac{1}{|T|}\sum_{t \in T}\min_{p \in P}\|t - p\|^2
        + \frac{1}{|P|}\sum_{p \in P}\min_{t \in T}\|p - t\|^2

    (Fan et al., arXiv:1612.00603). Padded slots (mask False) take part in neither term;
    an event with an empty set on either side scores 0.

    Returns:
        per-event distance (B,), and for each target slot the index of its nearest
        predicted point (B, S_t) and the squared distance to it (B, S_t).

    Shapes:
        pred: (B, S_p, D), pred_mask: (B, S_p) bool, target: (B, S_t, D),
        target_mask: (B, S_t) bool -> (B,), (B, S_t), (B, S_t)
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):  # full precision under AMP
        target, pred = target.float(), pred.float()
        d = (  # squared distances (B, S_t, S_p), smooth at 0 unlike cdist
            target.square().sum(-1)[:, :, None] + pred.square().sum(-1)[:, None, :] - 2 * target @ pred.transpose(1, 2)
        ).clamp(min=0)
    valid = target_mask[:, :, None] & pred_mask[:, None, :]
    d = d.masked_fill(~valid, float("inf"))
    t_min, t_arg = d.min(dim=2)  # (B, S_t)
    p_min = d.min(dim=1).values  # (B, S_p)
    t_min = torch.where(torch.isfinite(t_min), t_min, torch.zeros_like(t_min))
    p_min = torch.where(torch.isfinite(p_min), p_min, torch.zeros_like(p_min))
    n_t = target_mask.sum(1).clamp(min=1)
    n_p = pred_mask.sum(1).clamp(min=1)
    cd = t_min.sum(1) / n_t + p_min.sum(1) / n_p
    return cd, t_arg, t_min
