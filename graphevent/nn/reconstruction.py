"""Reconstructed events as point sets, and their conversion back to images for plotting."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphevent.errors import DataError


@dataclass
class Reconstruction:
    """Reconstructed points of a batch of events (what an autoencoder's ``reconstruct`` returns).

    Attributes:
        pos: (M, 2) (eta, phi) of each reconstructed point.
        values: (M, F) node values in the dataset's units (after the preprocessing
            transform, i.e. the same units as ``batch.x``).
        batch: (M,) event index of each point.
        num_events: B.
        hidden: (M,) bool, for masked models: which points were hidden from the encoder
            (their values are predictions; the others are the inputs). ``None`` otherwise.
    """

    pos: Tensor
    values: Tensor
    batch: Tensor
    num_events: int
    hidden: Tensor | None = None

    def event(self, index: int) -> tuple[Tensor, Tensor]:
        """``(pos (m, 2), values (m, F))`` of one event."""
        sel = self.batch == index
        return self.pos[sel], self.values[sel]

    def to_images(self, pixel_size: tuple[float, float], shape: tuple[int, int]) -> Tensor:
        """Bin the points onto the image grid: ``(B, F, H, W)``, one image per value column.

        Uses the preprocessing convention (``graphevent.data.transforms.image_to_points``):
        ``eta = (row - (H-1)/2) * pixel_eta``, ``phi = (col - (W-1)/2) * pixel_phi``. Points
        are rounded to the nearest pixel and clipped to the image; several points in one
        pixel add up.

        Shapes:
            -> (num_events, F, H, W) float32
        """
        if pixel_size is None or shape is None:
            raise DataError("reconstruction: the dataset has no image geometry (pixel_size, image_shape)")
        h, w = int(shape[0]), int(shape[1])
        pos = self.pos.detach().float()
        row = torch.round(pos[:, 0] / pixel_size[0] + (h - 1) / 2).long().clamp(0, h - 1)
        col = torch.round(pos[:, 1] / pixel_size[1] + (w - 1) / 2).long().clamp(0, w - 1)
        f = self.values.size(1)
        img = torch.zeros(self.num_events, f, h * w, device=pos.device)
        flat = (row * w + col)[:, None].expand(-1, f)
        img.index_put_((self.batch[:, None].expand(-1, f), torch.arange(f, device=pos.device).expand_as(flat), flat),
                       self.values.detach().float(), accumulate=True)
        return img.view(self.num_events, f, h, w)
