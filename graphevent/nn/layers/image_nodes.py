"""Detector images -> padded nodes, inside a model: preprocessing's node building as torch ops.

:class:`ImageNodes` is :class:`~graphevent.data.transforms.image_to_points.ImageToPoints`
followed by the data config's scale/transform, on a batch of dense images, with every shape a
function of the batch only (and one data-dependent size: the most nodes of an event in the
batch). An exported model that starts with it (``graphevent export``) turns the raw images a
reader yields into scores without graphevent.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from graphevent.data.transforms.image_to_points import ImageToPoints
from graphevent.errors import ConfigError
from graphevent.nn.layers.padded_nodes import PaddedNodes


#: most image channels :class:`ImageNodes` takes (see :func:`numpy_row_sum`)
MAX_CHANNELS = 128


def numpy_row_sum(columns: list[Tensor]) -> Tensor:
    """``sum(values, axis=1)`` of a float32 ``(P, C)`` array in numpy's order of additions
    (sequential below 8 columns, 8 interleaved partial sums from 8 to 128), so the node cap
    ranks exactly the values preprocessing ranks. ``columns``: the C columns, each ``(...)``;
    ``C <= 128`` (:data:`MAX_CHANNELS`: numpy splits longer rows in halves)."""
    n = len(columns)
    if n < 8:
        total = columns[0]
        for c in columns[1:]:
            total = total + c
        return total
    r = list(columns[:8])
    full = n - n % 8
    for i in range(8, full, 8):
        r = [r[j] + columns[i + j] for j in range(8)]
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for c in columns[full:]:
        total = total + c
    return total


class ImageNodes(PaddedNodes):
    """The nodes preprocessing makes of each image of a batch, padded (see
    :class:`~graphevent.data.transforms.image_to_points.ImageToPoints` for the rules).

    Per event: non-finite pixel values become 0 (``bad_values: zero``); a pixel of channel
    c is occupied where its value (its magnitude, for signed channels) exceeds the channel's
    threshold. Candidate nodes are laid out once in preprocessing's node order (union:
    native-resolution pixels, then each collapsed channel's cells; per_channel: channel by
    channel; rows, then columns), each with its constant position (the same float32 numbers
    as preprocessing's, computed by its own code) and its raw values (cell sums in float64,
    as preprocessing's); the node cap, packing and scale/transform are :class:`PaddedNodes`'.

    Args:
        points: the preprocessing's :class:`ImageToPoints` (thresholds, signed, upsample,
            pixel size, node mode, collapse, max_nodes are read from it).
        image_size: ``(H, W)``.
        scales: per channel scale (``node feature = transform(value * scale)``).
        transforms: per channel ``none`` or ``log1p``.
        channels_last: the input is ``(B, H, W, C)`` (else ``(B, C, H, W)``), as the file.

    Shapes:
        images: (B, H, W, C) float32 -> features (B, N, F), positions (B, N, 2), mask (B, N),
        counts (B,) int64, with N the most nodes of an event in the batch (at least 2)
    """

    def __init__(self, points: ImageToPoints, image_size: tuple[int, int], scales, transforms,
                 channels_last: bool = True) -> None:
        super().__init__(scales, transforms, int(points.max_nodes), points.mode == "per_channel")
        h, w = int(image_size[0]), int(image_size[1])
        points.check_shape(h, w)
        c = len(points.thresholds)
        if c > MAX_CHANNELS:
            raise ConfigError(f"channels: {c} image channels; the image-input export takes at most {MAX_CHANNELS}")
        self.height, self.width = h, w
        self.channels_last = channels_last
        self.any_signed = bool(points.signed.any())
        self.register_buffer("thresholds", torch.from_numpy(points.thresholds.copy()).view(1, c, 1, 1), persistent=False)
        self.register_buffer("signed", torch.from_numpy(points.signed.copy()).view(1, c, 1, 1), persistent=False)
        # candidate groups in preprocessing's key order: (channels, cell size); union's group 0
        # holds every native-resolution channel
        coarse = [int(f) if points.collapse and f > 1 else 1 for f in points.upsample]
        if self.per_channel:
            groups = [([ch], coarse[ch]) for ch in range(c)]
        else:
            fine = [ch for ch in range(c) if coarse[ch] == 1]
            groups = ([(fine, 1)] if fine else []) + [([ch], coarse[ch]) for ch in range(c) if coarse[ch] > 1]
        self.groups = groups
        positions = []
        for _, f in groups:
            rr, cc = np.meshgrid(np.arange(h // f), np.arange(w // f), indexing="ij")
            rr, cc = rr.reshape(-1).astype(np.float64), cc.reshape(-1).astype(np.float64)
            if f > 1:
                rr, cc = points._cell_centre(rr, cc, f)
            positions.append(points._pos(rr, cc, h, w)[0])
        self.num_candidates = sum(len(p) for p in positions)
        self.register_buffer("positions", torch.from_numpy(np.concatenate(positions)), persistent=False)
        self.num_features = c + 1 if self.per_channel else c

    def _group(self, v: Tensor, occ: Tensor, chs: list[int], f: int) -> tuple[Tensor, Tensor]:
        """Raw values (B, cells, C) of the group's channels (zeros elsewhere) and occupancy (B, cells)."""
        b, c, h, w = v.shape
        if f == 1:
            onehot = torch.zeros(c, dtype=v.dtype, device=v.device)
            onehot[chs] = 1.0
            vals = (v * onehot.view(1, c, 1, 1)).permute(0, 2, 3, 1).reshape(b, h * w, c)
            o = occ[:, chs].any(dim=1).reshape(b, h * w)
            return vals, o
        ch = chs[0]
        cells = (h // f) * (w // f)
        summed = v[:, ch].double().reshape(b, h // f, f, w // f, f).sum(dim=(2, 4)).float().reshape(b, cells)
        o = occ[:, ch].reshape(b, h // f, f, w // f, f).to(torch.int32).sum(dim=(2, 4)).reshape(b, cells) > 0
        vals = torch.zeros(b, cells, c, dtype=v.dtype, device=v.device)
        vals[:, :, ch] = summed
        return vals, o

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = images.float()
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        mag = torch.where(self.signed, x.abs(), x) if self.any_signed else x
        occ = mag > self.thresholds
        v = torch.where(occ, x, torch.zeros_like(x))
        vals, occs = [], []
        for chs, f in self.groups:
            a, o = self._group(v, occ, chs, f)
            vals.append(a)
            occs.append(o)
        raw = torch.cat(vals, dim=1)  # (B, M, C)
        occupied = torch.cat(occs, dim=1)  # (B, M)
        if self.per_channel:
            score = raw.sum(-1)  # one nonzero column per candidate
            ch = torch.cat([torch.full((a.shape[1],), chs[0], dtype=torch.long, device=x.device)
                            for (chs, _), a in zip(self.groups, vals)])
            onehot = torch.nn.functional.one_hot(ch, self.channels).to(raw.dtype).expand(raw.shape[0], -1, -1)
            raw = torch.cat([onehot, score[..., None]], dim=-1)
        else:
            score = numpy_row_sum([raw[..., i] for i in range(self.channels)])
        feats, idx, mask, counts = self._pack(self._cap(occupied, score), raw)
        feats = self._transform(feats).masked_fill(~mask[..., None], 0.0)
        positions = self.positions[idx].masked_fill(~mask[..., None], 0.0)
        return feats, positions, mask, counts

    def __repr__(self) -> str:
        mode = "per_channel" if self.per_channel else "union"
        return (f"{self.__class__.__name__}(image=({self.height}, {self.width}, {self.channels}), mode={mode!r}, "
                f"candidates={self.num_candidates}, max_nodes={self.max_nodes})")
