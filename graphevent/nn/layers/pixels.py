"""Node positions back to pixel indices, and points back to dense images."""

from __future__ import annotations

import torch
from torch import Tensor


def pixel_coords(pos: Tensor, pixel_size: tuple[float, float], shape: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    r"""Integer ``(row, col)`` of each node from its (eta, phi) position.

    Inverts the preprocessing convention (:class:`graphevent.data.transforms.image_to_points.ImageToPoints`):
    ``eta = (row - (H-1)/2) * pixel_eta``, ``phi = (col - (W-1)/2) * pixel_phi``, so
    :math:`\mathrm{row} = \mathrm{round}(\eta / \Delta\eta + (H-1)/2)`. Positions are stored in
    float32, far within half a pixel of the centre, so the rounding recovers the pixel exactly.
    Without ``shape`` the lattice is centred on zero (rows and columns may be negative).
    Collapsed cells (``collapse=True``) sit at their cell centre, a pixel of the lattice for
    odd cell sizes.

    Shapes:
        pos: (N, 2) -> row (N,), col (N,) int64
    """
    off_r = (shape[0] - 1) / 2 if shape is not None else 0.0
    off_c = (shape[1] - 1) / 2 if shape is not None else 0.0
    p = pos.double()
    row = torch.round(p[:, 0] / pixel_size[0] + off_r).long()
    col = torch.round(p[:, 1] / pixel_size[1] + off_c).long()
    return row, col


def dense_images(
    x: Tensor, pos: Tensor, batch: Tensor, num_events: int, pixel_size: tuple[float, float], shape: tuple[int, int],
    wrap_cols: bool = False,
) -> Tensor:
    """Scatter each node's feature vector into its pixel of a zero ``(B, F, H, W)`` tensor.

    Runs on the device of ``x`` (one ``index_put_``, no host sync). Several nodes in one
    pixel add up; nodes outside the image are dropped. With ``wrap_cols`` (a periodic phi
    spanning the image's width) columns are taken modulo ``W``: none falls outside.

    Shapes:
        x: (N, F), pos: (N, 2), batch: (N,) -> (B, F, H, W), dtype of ``x``
    """
    h, w = int(shape[0]), int(shape[1])
    row, col = pixel_coords(pos, pixel_size, (h, w))
    if wrap_cols:
        col = torch.remainder(col, w)
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    f = x.size(1)
    flat = torch.where(inside, (batch * h + row) * w + col, num_events * h * w)  # outside -> spare slot
    img = x.new_zeros(num_events * h * w + 1, f).index_put_((flat,), x, accumulate=True)
    return img[:-1].view(num_events, h, w, f).permute(0, 3, 1, 2).contiguous()
