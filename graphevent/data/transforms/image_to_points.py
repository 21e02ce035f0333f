"""Nonzero pixels of detector images -> point clouds, vectorised over a chunk of events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphevent.errors import ConfigError


@dataclass
class PointCloudChunk:
    """Point clouds of ``n`` events, stored flat, event after event.

    Attributes:
        values: ``(P, F)`` float32 raw node values (before scale/transform).
        pos: ``(P, 2)`` float32 (eta, phi) relative to the event centre.
        counts: ``(n,)`` int64 nodes per event.
        alt_counts: ``(n, 4)`` int64 nodes per event under the four node modes
            (union, union+collapse, per_channel, per_channel+collapse); ``None`` for hits.
    """

    values: np.ndarray
    pos: np.ndarray
    counts: np.ndarray
    alt_counts: np.ndarray | None = None

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def select(self, keep: np.ndarray) -> "PointCloudChunk":
        """Keep only events where ``keep`` (bool, (n,)) is true."""
        node_keep = np.repeat(keep, self.counts)
        return PointCloudChunk(
            self.values[node_keep],
            self.pos[node_keep],
            self.counts[keep],
            None if self.alt_counts is None else self.alt_counts[keep],
        )


ALT_MODES = ("union", "union+collapse", "per_channel", "per_channel+collapse")


class ImageToPoints:
    """Occupied pixels become nodes.

    A pixel of channel c is occupied if its value > ``thresholds[c]``. Positions are pixel
    centres in physical units, centred on the image: ``eta = (row - (H-1)/2) * pixel_eta``,
    ``phi = (col - (W-1)/2) * pixel_phi`` (rows run along eta, columns along phi).

    Modes:
        * ``union``: one node per pixel occupied in any channel; features = all channel
          values at that pixel (below-threshold values set to 0).
        * ``per_channel``: one node per (pixel, channel); features = one-hot channel + value.

    With ``collapse=True`` each channel with ``upsample[c] = f > 1`` (e.g. HCAL towers
    spread over 5x5 ECAL pixels) contributes one node per occupied f x f cell, at the
    cell centre, carrying the cell's summed (thresholded) pixel values: the image's energy
    is conserved. In union mode those nodes have zeros in the fine channels' columns.

    Args:
        thresholds: ``(C,)`` zero-suppression thresholds on raw values.
        upsample: ``(C,)`` cell size of each channel in pixels (1 = native).
        pixel_size: (eta, phi) size of one pixel.
        mode: ``union`` or ``per_channel``.
        collapse: collapse upsampled channels to one node per cell.
        max_nodes: keep the ``max_nodes`` nodes of largest summed value (0 = all).

    Shapes:
        images: (n, C, H, W) -> PointCloudChunk with values (P, C) [union] or (P, C + 1).
    """

    def __init__(
        self,
        thresholds,
        upsample,
        pixel_size: tuple[float, float],
        mode: str = "union",
        collapse: bool = True,
        max_nodes: int = 0,
    ) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.upsample = np.asarray(upsample, dtype=np.int64)
        self.pixel_size = (float(pixel_size[0]), float(pixel_size[1]))
        self.mode = mode
        self.collapse = collapse
        self.max_nodes = max_nodes

    def __repr__(self) -> str:
        return (
            f"ImageToPoints(mode={self.mode!r}, collapse={self.collapse}, thresholds={self.thresholds.tolist()}, "
            f"upsample={self.upsample.tolist()}, pixel_size={self.pixel_size}, max_nodes={self.max_nodes})"
        )

    def check_shape(self, h: int, w: int) -> None:
        for c, f in enumerate(self.upsample):
            if f > 1 and (h % f or w % f):
                raise ConfigError(f"channels[{c}].upsample: {f} does not divide the image size {h}x{w}")

    # ----------------------------------------------------------------- pieces
    def _cells(self, img: np.ndarray, f: int) -> np.ndarray:
        n, h, w = img.shape
        return img.reshape(n, h // f, f, w // f, f).sum(axis=(2, 4))

    def _pos(self, rows: np.ndarray, cols: np.ndarray, h: int, w: int) -> np.ndarray:
        eta = (rows - (h - 1) / 2.0) * self.pixel_size[0]
        phi = (cols - (w - 1) / 2.0) * self.pixel_size[1]
        return np.stack([eta, phi], axis=1).astype(np.float32)

    def _fine_and_coarse(self, images: np.ndarray, collapse: bool):
        """Per channel: thresholded image, and for collapsed channels their cell sums."""
        n, c, h, w = images.shape
        thr = images * (images > self.thresholds[None, :, None, None])
        coarse = {}
        if collapse:
            for ch in range(c):
                f = int(self.upsample[ch])
                if f > 1:
                    coarse[ch] = self._cells(thr[:, ch], f)
        return thr, coarse

    def _union(self, thr: np.ndarray, coarse: dict, counts_only: bool = False):
        n, c, h, w = thr.shape
        fine_ch = [ch for ch in range(c) if ch not in coarse]
        parts_ev, parts_val, parts_pos = [], [], []
        occ = (thr[:, fine_ch] > 0).any(axis=1) if fine_ch else np.zeros((n, h, w), bool)
        ev, r, col = np.nonzero(occ)
        counts = np.bincount(ev, minlength=n)
        if not counts_only:
            vals = np.zeros((len(ev), c), np.float32)
            vals[:, fine_ch] = thr[ev][:, fine_ch][np.arange(len(ev)), :, r, col] if len(ev) else 0
            parts_ev.append(ev)
            parts_val.append(vals)
            parts_pos.append(self._pos(r, col, h, w))
        for ch, cells in coarse.items():
            f = int(self.upsample[ch])
            ev2, r2, c2 = np.nonzero(cells > 0)
            counts = counts + np.bincount(ev2, minlength=n)
            if not counts_only:
                vals = np.zeros((len(ev2), c), np.float32)
                vals[:, ch] = cells[ev2, r2, c2]
                parts_ev.append(ev2)
                parts_val.append(vals)
                parts_pos.append(self._pos(r2 * f + (f - 1) / 2.0, c2 * f + (f - 1) / 2.0, h, w))
        if counts_only:
            return counts
        return self._merge(parts_ev, parts_val, parts_pos, n, c)

    def _per_channel(self, thr: np.ndarray, coarse: dict, counts_only: bool = False):
        n, c, h, w = thr.shape
        parts_ev, parts_val, parts_pos = [], [], []
        counts = np.zeros(n, np.int64)
        for ch in range(c):
            if ch in coarse:
                f = int(self.upsample[ch])
                ev, r, col = np.nonzero(coarse[ch] > 0)
                v = coarse[ch][ev, r, col]
                rr, cc = r * f + (f - 1) / 2.0, col * f + (f - 1) / 2.0
            else:
                ev, r, col = np.nonzero(thr[:, ch] > 0)
                v = thr[ev, ch, r, col]
                rr, cc = r, col
            counts += np.bincount(ev, minlength=n)
            if counts_only:
                continue
            vals = np.zeros((len(ev), c + 1), np.float32)
            vals[:, ch] = 1.0
            vals[:, c] = v
            parts_ev.append(ev)
            parts_val.append(vals)
            parts_pos.append(self._pos(rr, cc, h, w))
        if counts_only:
            return counts
        return self._merge(parts_ev, parts_val, parts_pos, n, c + 1)

    @staticmethod
    def _merge(parts_ev, parts_val, parts_pos, n, f):
        if not parts_ev:
            return np.zeros((0, f), np.float32), np.zeros((0, 2), np.float32), np.zeros(n, np.int64)
        ev = np.concatenate(parts_ev)
        order = np.argsort(ev, kind="stable")  # events in order; within an event, parts in order
        return (
            np.concatenate(parts_val)[order],
            np.concatenate(parts_pos)[order],
            np.bincount(ev, minlength=n).astype(np.int64),
        )

    def _truncate(self, values, pos, counts, value_cols):
        """Keep the max_nodes largest-valued nodes of each event, preserving their order."""
        if not self.max_nodes or counts.max(initial=0) <= self.max_nodes:
            return values, pos, counts
        offsets = np.concatenate([[0], np.cumsum(counts)])
        keep = np.zeros(len(values), bool)
        score = values[:, value_cols].sum(1)
        for e in np.flatnonzero(counts > self.max_nodes):
            s, t = offsets[e], offsets[e + 1]
            top = np.argsort(-score[s:t], kind="stable")[: self.max_nodes]
            keep[s + top] = True
        small = np.repeat(counts <= self.max_nodes, counts)
        keep |= small
        return values[keep], pos[keep], np.minimum(counts, self.max_nodes)

    # ----------------------------------------------------------------- main
    def __call__(self, images: np.ndarray) -> PointCloudChunk:
        n, c, h, w = images.shape
        self.check_shape(h, w)
        thr, coarse = self._fine_and_coarse(images, self.collapse)
        if self.mode == "union":
            values, pos, counts = self._union(thr, coarse)
            value_cols = list(range(c))
        else:
            values, pos, counts = self._per_channel(thr, coarse)
            value_cols = [c]
        values, pos, counts = self._truncate(values, pos, counts, value_cols)
        # node counts under every mode, for `graphevent inspect` (cheap: no values gathered)
        _, coarse_all = self._fine_and_coarse(images, True) if not self.collapse else (thr, coarse)
        alt = np.stack(
            [
                self._union(thr, {}, counts_only=True),
                self._union(thr, coarse_all, counts_only=True),
                self._per_channel(thr, {}, counts_only=True),
                self._per_channel(thr, coarse_all, counts_only=True),
            ],
            axis=1,
        ).astype(np.int64)
        return PointCloudChunk(values.astype(np.float32), pos, counts, alt)


def points_from_hits(values: np.ndarray, eta: np.ndarray, phi: np.ndarray, counts: np.ndarray, thresholds, max_nodes: int = 0) -> PointCloudChunk:
    """Point-form reader output -> PointCloudChunk: hits at or below threshold are dropped.

    A hit is kept if any channel's value exceeds that channel's threshold; values below
    threshold in its row are set to zero.
    """
    thr = np.asarray(thresholds, np.float32)
    above = values > thr[None, :]
    keep = above.any(axis=1)
    ev = np.repeat(np.arange(len(counts)), counts)
    v = (values * above)[keep].astype(np.float32)
    pos = np.stack([eta, phi], axis=1)[keep].astype(np.float32)
    new_counts = np.bincount(ev[keep], minlength=len(counts)).astype(np.int64)
    if max_nodes:
        itp = ImageToPoints(thr, np.ones(len(thr), np.int64), (1.0, 1.0), max_nodes=max_nodes)
        v, pos, new_counts = itp._truncate(v, pos, new_counts, list(range(v.shape[1])))
    return PointCloudChunk(v, pos, new_counts, None)
