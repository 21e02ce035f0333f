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
        lattice_pos: ``(P, 2)`` float64 positions in units of the eta pixel size
            (``eta / pixel_eta``, ``phi / pixel_eta``) for image nodes, ``None`` for hits.
            With square pixels these are integers or half-integers, exact in float64, so
            equidistant pixels tie exactly in the kNN search (which then prefers the lower
            node index) instead of being ordered by float32 rounding of ``pos``.
    """

    values: np.ndarray
    pos: np.ndarray
    counts: np.ndarray
    alt_counts: np.ndarray | None = None
    lattice_pos: np.ndarray | None = None

    @classmethod
    def concatenate(cls, parts: list["PointCloudChunk"]) -> "PointCloudChunk":
        """The events of ``parts``, one after the other."""

        def cat(name):
            arrays = [getattr(p, name) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)

        return cls(*(cat(f) for f in ("values", "pos", "counts", "alt_counts", "lattice_pos")))

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
            None if self.lattice_pos is None else self.lattice_pos[node_keep],
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
        signed: per channel, occupancy is ``|value| > threshold`` (negative values kept).

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
        signed=None,
    ) -> None:
        self.signed = np.zeros(len(thresholds), bool) if signed is None else np.asarray(signed, bool)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.upsample = np.asarray(upsample, dtype=np.int64)
        self.pixel_size = (float(pixel_size[0]), float(pixel_size[1]))
        self.mode = mode
        self.collapse = collapse
        self.max_nodes = max_nodes

    @classmethod
    def from_config(cls, cfg) -> "ImageToPoints":
        """The node building of a :class:`~graphevent.config.data.DataConfig` (image readers)."""
        return cls(
            [c.threshold for c in cfg.channels],
            [c.upsample for c in cfg.channels],
            cfg.image.pixel_size,
            mode=cfg.graph.node_mode,
            collapse=cfg.graph.collapse_upsampled,
            max_nodes=cfg.graph.max_nodes,
            signed=[c.signed for c in cfg.channels],
        )

    def __repr__(self) -> str:
        return (
            f"ImageToPoints(mode={self.mode!r}, collapse={self.collapse}, thresholds={self.thresholds.tolist()}, "
            f"upsample={self.upsample.tolist()}, pixel_size={self.pixel_size}, max_nodes={self.max_nodes}, "
            f"signed={self.signed.tolist()})"
        )

    def check_shape(self, h: int, w: int) -> None:
        for c, f in enumerate(self.upsample):
            if f > 1 and (h % f or w % f):
                raise ConfigError(f"channels[{c}].upsample: {f} does not divide the image size {h}x{w}")

    # ----------------------------------------------------------------- pieces
    def _pos(self, rows: np.ndarray, cols: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(pos float32 in physical units, lattice_pos float64 in eta-pixel units)."""
        r = rows - (h - 1) / 2.0
        c = cols - (w - 1) / 2.0
        pos = np.stack([r * self.pixel_size[0], c * self.pixel_size[1]], axis=1).astype(np.float32)
        aspect = self.pixel_size[1] / self.pixel_size[0]
        lattice = np.stack([r, c if aspect == 1.0 else c * aspect], axis=1).astype(np.float64)
        return pos, lattice

    def _keys(self, ev, ch, r, col, h, w, c, per_channel: bool, collapse: bool):
        """One int64 key per occupied (event, channel, pixel) naming the node it belongs to.

        Keys sort as events, then groups (union: fine pixels first, then each collapsed
        channel's cells; per_channel: channels in order), then rows, then columns.
        """
        f = self.upsample[ch] if collapse else np.ones_like(ch)
        coarse = f > 1
        rr = np.where(coarse, r // f, r)
        cc = np.where(coarse, col // f, col)
        if per_channel:
            group = ch
        else:
            # group 0: native-resolution pixels of all channels; 1 + ch: cells of collapsed channel ch
            group = np.where(coarse, ch + 1, 0)
        return ((ev * (c + 1) + group) * h + rr) * w + cc

    def _decode(self, keys, h, w, c):
        cc = keys % w
        rr = (keys // w) % h
        group = (keys // (w * h)) % (c + 1)
        ev = keys // (w * h * (c + 1))
        return ev, group, rr, cc

    def _cell_centre(self, rr, cc, f):
        return rr * f + (f - 1) / 2.0, cc * f + (f - 1) / 2.0

    def _nodes(self, ev, ch, r, col, val, n, h, w, c, per_channel: bool, collapse: bool):
        """-> (values, pos, lattice_pos, counts), nodes ordered by key within each event."""
        keys = self._keys(ev, ch, r, col, h, w, c, per_channel, collapse)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        first = np.ones(len(sk), bool)
        first[1:] = sk[1:] != sk[:-1]
        uniq = sk[first]
        inv = np.empty(len(keys), np.int64)
        inv[order] = np.cumsum(first) - 1
        u = len(uniq)
        nev, group, rr, cc = self._decode(uniq, h, w, c)
        counts = np.bincount(nev, minlength=n).astype(np.int64)
        if per_channel:
            node_ch = group
            f = self.upsample[node_ch] if collapse else np.ones_like(node_ch)
            rr, cc = np.where(f > 1, self._cell_centre(rr, cc, f)[0], rr), np.where(f > 1, self._cell_centre(rr, cc, f)[1], cc)
            values = np.zeros((u, c + 1), np.float32)
            values[np.arange(u), node_ch] = 1.0
            values[:, c] = np.bincount(inv, weights=val, minlength=u)
        else:
            f = np.where(group > 0, self.upsample[np.maximum(group - 1, 0)], 1)
            rr, cc = np.where(f > 1, self._cell_centre(rr, cc, f)[0], rr), np.where(f > 1, self._cell_centre(rr, cc, f)[1], cc)
            values = np.bincount(inv * c + ch, weights=val, minlength=u * c).reshape(u, c).astype(np.float32)
        return (values.astype(np.float32), *self._pos(rr, cc, h, w), counts)

    def _truncate(self, values, pos, counts, value_cols, lattice=None):
        """Keep the max_nodes largest-valued nodes of each event, preserving their order."""
        if not self.max_nodes or counts.max(initial=0) <= self.max_nodes:
            return values, pos, counts, lattice
        offsets = np.concatenate([[0], np.cumsum(counts)])
        keep = np.zeros(len(values), bool)
        score = values[:, value_cols].sum(1)
        for e in np.flatnonzero(counts > self.max_nodes):
            s, t = offsets[e], offsets[e + 1]
            top = np.argsort(-score[s:t], kind="stable")[: self.max_nodes]
            keep[s + top] = True
        small = np.repeat(counts <= self.max_nodes, counts)
        keep |= small
        return values[keep], pos[keep], np.minimum(counts, self.max_nodes), None if lattice is None else lattice[keep]

    # ----------------------------------------------------------------- main
    def _occupied(self, images: np.ndarray):
        """(event, channel, row, col, value) of every pixel above threshold.

        One pass over the dense images in their memory order: a channels-first view of
        channels-last data (as the HDF5 reader returns it) is scanned without a copy.
        """
        n, c, h, w = images.shape
        last = images.transpose(0, 2, 3, 1)
        if not images.flags.c_contiguous and last.flags.c_contiguous:
            dense = last  # (n, H, W, C): thresholds repeat along each image row of W * C values
            thr, signed, row = np.tile(self.thresholds, w), np.tile(self.signed, w), w * c
        else:
            dense = np.ascontiguousarray(images)  # (n, C, H, W): one threshold per H * W values
            thr, signed, row = np.repeat(self.thresholds, h * w), np.repeat(self.signed, h * w), c * h * w
        # slabs of about 2 MB, seen as rows matching thr: the comparison's bool array stays
        # in the CPU cache and numpy's inner loop runs over whole rows, not over C values
        per_event = c * h * w
        step = max(1, (1 << 21) // (per_event * dense.itemsize))
        flat = []
        for s in range(0, n, step):
            slab = dense[s : s + step].reshape(-1, row)
            mag = np.where(signed, np.abs(slab), slab) if self.signed.any() else slab
            f = np.flatnonzero(mag > thr)
            f += s * per_event
            flat.append(f)
        flat = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        val = dense.reshape(-1)[flat].astype(np.float64)
        if dense is last:
            rest, ch = np.divmod(flat, c)
            rest, col = np.divmod(rest, w)
            ev, r = np.divmod(rest, h)
        else:
            rest, col = np.divmod(flat, w)
            rest, r = np.divmod(rest, h)
            ev, ch = np.divmod(rest, c)
        return ev, ch, r, col, val

    # ----------------------------------------------------------------- main
    def __call__(self, images: np.ndarray) -> PointCloudChunk:
        n, c, h, w = images.shape
        self.check_shape(h, w)
        # one pass over the dense images; everything after works on the occupied pixels only
        ev, ch, r, col, val = self._occupied(images)
        per_channel = self.mode == "per_channel"
        values, pos, lattice, counts = self._nodes(ev, ch, r, col, val, n, h, w, c, per_channel, self.collapse)
        value_cols = [c] if per_channel else list(range(c))
        values, pos, counts, lattice = self._truncate(values, pos, counts, value_cols, lattice)
        alt = self._alt_counts(ev, ch, r, col, n, h, w, c)
        return PointCloudChunk(values, pos, counts, alt, lattice)

    def _alt_counts(self, ev, ch, r, col, n, h, w, c) -> np.ndarray:
        """Nodes per event under the four modes of :data:`ALT_MODES`, for `graphevent inspect`.

        union = distinct occupied pixels; per_channel = occupied (pixel, channel) pairs;
        the collapse variants replace the pixels of upsampled channels by their distinct
        occupied cells. Only the upsampled channels' cells need a sort.
        """

        def distinct_per_event(keys: np.ndarray, per_event: int) -> np.ndarray:
            if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():
                keys = np.sort(keys)
            first = np.ones(len(keys), bool)
            first[1:] = keys[1:] != keys[:-1]
            return np.bincount(keys[first] // per_event, minlength=n)

        f = self.upsample[ch]
        coarse = f > 1
        fine = ~coarse
        pix = (ev * h + r) * w + col  # entries come sorted by pixel for channels-last input
        cells = distinct_per_event(((ev[coarse] * c + ch[coarse]) * h + r[coarse] // f[coarse]) * w + col[coarse] // f[coarse], c * h * w)
        alt = np.empty((n, len(ALT_MODES)), np.int64)
        alt[:, 0] = distinct_per_event(pix, h * w)
        alt[:, 1] = distinct_per_event(pix[fine], h * w) + cells
        alt[:, 2] = np.bincount(ev, minlength=n)
        alt[:, 3] = np.bincount(ev[fine], minlength=n) + cells
        return alt


def points_from_hits(values: np.ndarray, eta: np.ndarray, phi: np.ndarray, counts: np.ndarray, thresholds, max_nodes: int = 0, signed=None) -> PointCloudChunk:
    """Point-form reader output -> PointCloudChunk: hits at or below threshold are dropped.

    A hit is kept if any channel's value exceeds that channel's threshold (its magnitude,
    for signed channels); values below threshold in its row are set to zero.
    """
    thr = np.asarray(thresholds, np.float32)
    mag = values if signed is None else np.where(np.asarray(signed, bool)[None, :], np.abs(values), values)
    above = mag > thr[None, :]
    keep = above.any(axis=1)
    ev = np.repeat(np.arange(len(counts)), counts)
    v = (values * above)[keep].astype(np.float32)
    pos = np.stack([eta, phi], axis=1)[keep].astype(np.float32)
    new_counts = np.bincount(ev[keep], minlength=len(counts)).astype(np.int64)
    if max_nodes:
        itp = ImageToPoints(thr, np.ones(len(thr), np.int64), (1.0, 1.0), max_nodes=max_nodes)
        v, pos, new_counts, _ = itp._truncate(v, pos, new_counts, list(range(v.shape[1])))
    return PointCloudChunk(v, pos, new_counts, None)
