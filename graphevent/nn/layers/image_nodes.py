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
    threshold. Candidate nodes are numbered once in preprocessing's node order (union:
    native-resolution pixels, then each collapsed channel's cells; per_channel: channel by
    channel; rows, then columns), each with its constant position (the same float32 numbers
    as preprocessing's, computed by its own code).

    Only the occupied pixel values are touched after one comparison over the images: they
    are gathered (in memory order, as preprocessing reads them), sorted by their candidate
    (a stable sort), and summed per candidate in float64 in that order, as preprocessing's
    ``bincount`` (a collapsed cell's pixels). With ``max_nodes``, the nodes of largest summed
    value are kept, equal values in node order (a stable sort by value, then by event; top-k
    under ONNX, whose ties go to the lower index); the kept nodes stay in node order and are
    scaled/transformed as the data config says (:class:`PaddedNodes`).

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
        # a threshold below 0 makes a non-finite pixel (read as 0) a node: the images are cleaned
        # first; otherwise a non-finite value is dropped where it is gathered (NaN fails the comparison)
        self.clean_images = bool((points.thresholds < 0).any())
        # compared as rows of the images' memory (channels_last: W * C values, thresholds repeated),
        # so that the comparison runs over long rows
        row = (np.tile(points.thresholds, w), np.tile(points.signed, w)) if channels_last else \
            (points.thresholds.reshape(c, 1), points.signed.reshape(c, 1))
        self.register_buffer("thresholds", torch.from_numpy(row[0].copy()), persistent=False)
        self.register_buffer("signed", torch.from_numpy(row[1].copy()), persistent=False)
        # candidate groups in preprocessing's key order: (channels, cell size); union's group 0
        # holds every native-resolution channel
        coarse = [int(f) if points.collapse and f > 1 else 1 for f in points.upsample]
        if self.per_channel:
            groups = [([ch], coarse[ch]) for ch in range(c)]
        else:
            fine = [ch for ch in range(c) if coarse[ch] == 1]
            groups = ([(fine, 1)] if fine else []) + [([ch], coarse[ch]) for ch in range(c) if coarse[ch] > 1]
        positions = []
        candidate = np.zeros((c, h, w), np.int64)  # the candidate each pixel value belongs to
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        for chs, f in groups:
            candidate[chs] = sum(len(p) for p in positions) + (rows // f) * (w // f) + cols // f
            rr, cc = np.meshgrid(np.arange(h // f), np.arange(w // f), indexing="ij")
            rr, cc = rr.reshape(-1).astype(np.float64), cc.reshape(-1).astype(np.float64)
            if f > 1:
                rr, cc = points._cell_centre(rr, cc, f)
            positions.append(points._pos(rr, cc, h, w)[0])
        self.num_candidates = sum(len(p) for p in positions)
        self.register_buffer("positions", torch.from_numpy(np.concatenate(positions)), persistent=False)
        # per pixel value of an image, in its memory order: its candidate and its channel
        channel = np.broadcast_to(np.arange(c)[:, None, None], (c, h, w))
        for name, table in (("value_candidate", candidate), ("value_channel", channel)):
            table = table.transpose(1, 2, 0) if channels_last else table
            self.register_buffer(name, torch.from_numpy(table.reshape(-1).astype(np.int64)), persistent=False)
        self.num_features = c + 1 if self.per_channel else c

    def _occupied(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Event, channel and candidate (``event * M + candidate``) of every occupied pixel
        value, in memory order, and the value (infinite ones read as 0, their candidate
        ``B * M``: after every event's).

        Shapes:
            images: (B, H, W, C) -> (P,) int64, (P,) int64, (P,) int64, (P,) float32
        """
        x = images.float()
        if self.clean_images:
            x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        h, w, c = self.height, self.width, self.channels
        rows = x.reshape(-1, w * c) if self.channels_last else x.reshape(-1, c, h * w)
        mag = torch.where(self.signed, rows.abs(), rows) if self.any_signed else rows
        b, size = images.shape[0], h * w * c
        hit = (mag > self.thresholds).reshape(b, size).nonzero()  # (P, 2): event, value of the image
        event, at = hit[:, 0], hit[:, 1]
        value = x.reshape(-1).index_select(0, event * size + at)
        cand = event * self.num_candidates + self.value_candidate.index_select(0, at)
        inf = torch.isinf(value)  # NaN is never above a threshold
        cand = torch.where(inf, torch.full_like(cand, b * self.num_candidates), cand)
        return event, self.value_channel.index_select(0, at), cand, torch.where(inf, torch.zeros_like(value), value)

    def _sort(self, v: Tensor, descending: bool) -> Tensor:
        """Stable argsort (equal values keep their order; ONNX: top-k, whose ties go to the lower index)."""
        if self.onnx:
            return v.topk(v.shape[0], largest=descending, sorted=True).indices
        return v.sort(descending=descending, stable=True).indices

    def _select(self, event: Tensor, score: Tensor, counts: Tensor) -> Tensor:
        """The nodes kept by the node cap (largest score, ties in node order), in node order.

        Shapes:
            event: (U,) (nodes in node order), score: (U,), counts: (B,) -> (U',) node indices
        """
        by_score = self._sort(score, True)
        order = by_score.index_select(0, self._sort(event.index_select(0, by_score), False))  # by event, then score (ties: node order)
        start = counts.cumsum(0) - counts
        rank = torch.arange(order.shape[0], device=event.device) - start.index_select(0, event.index_select(0, order))
        keep = torch.zeros_like(event, dtype=torch.bool).scatter(0, order, rank < self.max_nodes)
        return keep.nonzero()[:, 0]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        b, m, c = images.shape[0], self.num_candidates, self.channels
        event, ch, cand, value = self._occupied(images)
        order = self._sort(cand, False)  # by candidate; a candidate's values in memory order
        event, ch, cand, value = [t.index_select(0, order) for t in (event, ch, cand, value)]
        new = torch.cat([torch.ones_like(cand[:1], dtype=torch.bool), cand[1:] != cand[:-1]])
        slot = new.to(torch.int64).cumsum(0) - 1  # each value's node (non-finite values: one node after all)
        sums = torch.zeros(cand.shape[0] * c, dtype=torch.float64, device=images.device)
        sums = sums.index_add(0, slot * c + ch, value.double()).view(-1, c)
        first = (new & (cand < b * m)).nonzero()[:, 0]  # (U,) each node's first value
        node, event = cand.index_select(0, first), event.index_select(0, first)
        raw = sums.index_select(0, slot.index_select(0, first)).float()
        if self.per_channel:
            score = raw.sum(-1)  # one nonzero column per node
            raw = torch.cat([torch.nn.functional.one_hot(ch.index_select(0, first), c).to(raw.dtype), score[:, None]], dim=-1)
        else:
            score = numpy_row_sum([raw[:, i] for i in range(c)])
        counts = torch.zeros(b, dtype=torch.int64, device=images.device).index_add(0, event, torch.ones_like(event))
        if 0 < self.max_nodes < m:
            kept = self._select(event, score, counts)
            node, raw, event = node.index_select(0, kept), raw.index_select(0, kept), event.index_select(0, kept)
            counts = counts.clamp(max=self.max_nodes)
        n = self._padded_size(counts, max(m, 2))
        at = torch.arange(node.shape[0], device=images.device) - (counts.cumsum(0) - counts).index_select(0, event)
        feats = torch.zeros(b, n, self.num_features, dtype=torch.float32, device=images.device)
        feats = feats.index_put((event, at), self._transform(raw))
        positions = torch.zeros(b, n, 2, dtype=torch.float32, device=images.device)
        positions = positions.index_put((event, at), self.positions.index_select(0, node - event * m))
        mask = torch.arange(n, device=images.device)[None, :] < counts[:, None]
        return feats, positions, mask, counts

    def __repr__(self) -> str:
        mode = "per_channel" if self.per_channel else "union"
        return (f"{self.__class__.__name__}(image=({self.height}, {self.width}, {self.channels}), mode={mode!r}, "
                f"candidates={self.num_candidates}, max_nodes={self.max_nodes})")
