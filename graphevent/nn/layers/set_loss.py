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


def point_set(pos: Tensor, values: Tensor, batch: Tensor, num_events: int, pos_weight: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""Each event's nodes as one padded point set :math:`(\sqrt{w}\,p, v)`, the space in which
    :func:`chamfer_distance` compares positions ``pos`` and values together (``w``: ``pos_weight``).

    Shapes:
        pos: (N, 2), values: (N, F), batch: (N,) -> points (B, S, 2 + F) float32, mask (B, S) bool
    """
    from torch_geometric.utils import to_dense_batch

    w = pos_weight ** 0.5
    return to_dense_batch(torch.cat([w * pos, values], dim=-1).float(), batch, batch_size=num_events)


def nearest_value_error(pred_values: Tensor, nearest: Tensor, target_values: Tensor, target_mask: Tensor) -> Tensor:
    """Per event and channel, the mean squared error between each target point's values and
    those of its nearest predicted point (``nearest``, from :func:`chamfer_distance`).

    Shapes:
        pred_values: (B, S_p, F), nearest: (B, S_t), target_values: (B, S_t, F),
        target_mask: (B, S_t) -> (B, F)
    """
    f = pred_values.size(-1)
    matched = torch.gather(pred_values.float(), 1, nearest[..., None].expand(-1, -1, f))  # (B, S_t, F)
    err = (matched - target_values.float()).square() * target_mask[..., None]
    return err.sum(1) / target_mask.sum(1, keepdim=True).clamp(min=1)
