"""Helpers shared by the readers: error messages, image layout, event centres.

Nothing here imports torch; everything works on numpy arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graphevent.errors import DataError, MissingKeyError

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig


def unreadable(path: Path, fmt: str, exc: BaseException | str) -> DataError:
    """``<file>: cannot read as <format>: <reason>`` (first line of the underlying error)."""
    text = exc if isinstance(exc, str) else (str(exc).strip() or type(exc).__name__)
    reason = text.splitlines()[0].strip() if text else "unknown reason"
    return DataError(f"{path.name}: cannot read as {fmt}: {reason}")


def missing_key(path: Path, key: str, available, what: str = "keys") -> MissingKeyError:
    names = sorted(available)
    shown = ", ".join(map(repr, names[:20])) + (", ..." if len(names) > 20 else "")
    return MissingKeyError(f"{path.name}: key {key!r} not found; {what} in file: {shown or 'none'}")


def image_event_shape(cfg: "DataConfig") -> tuple[int, int, int]:
    """Shape of one event's image in the file: (H, W, C) or (C, H, W) by ``reader.layout``."""
    c, h, w = len(cfg.channels), cfg.image.height, cfg.image.width
    return (h, w, c) if cfg.reader.layout == "channels_last" else (c, h, w)


def expected_image_text(cfg: "DataConfig", with_n: bool = True) -> str:
    """E.g. ``(N, 125, 125, 3) (channels_last; channels tracks, ecal, hcal)``."""
    shape = image_event_shape(cfg)
    dims = ", ".join(map(str, shape))
    names = ", ".join(ch.name for ch in cfg.channels)
    return f"({'N, ' if with_n else ''}{dims}) ({cfg.reader.layout}; channels {names})"


def check_range(n_events: int, start: int, stop: int) -> None:
    """Reject an event range outside ``0 <= start < stop <= n_events`` (a caller bug)."""
    if not (0 <= start < stop <= n_events):
        raise ValueError(f"event range [{start}, {stop}) is outside [0, {n_events})")


def to_channels_first(images: np.ndarray, layout: str) -> np.ndarray:
    """float32 ``(n, C, H, W)`` from ``(n, H, W, C)`` or ``(n, C, H, W)``.

    Channels-last float32 data comes back as a transposed view, not copied (a copy of a
    1,024-event chunk of 125x125x3 images costs about a quarter of a second);
    :class:`ImageToPoints` scans such a view in its memory order.
    """
    if layout == "channels_last":
        return images.astype(np.float32, copy=False).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images, dtype=np.float32)


def per_event_column(path: Path, key: str, array_shape: tuple, n_events: int) -> None:
    """Check that a label/target array holds one value per event: ``(N,)`` or ``(N, 1)``."""
    shape = tuple(int(s) for s in array_shape)
    if not (shape in ((n_events,), (n_events, 1))):
        raise DataError(
            f"{path.name}: key {key!r} has shape {shape}; expected ({n_events},) (one value per event)"
        )


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - phi, 2.0 * np.pi)


def centre_points(
    eta: np.ndarray, phi: np.ndarray, weights: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions relative to each event's weighted centroid, phi wrapped to (-pi, pi].

    The centroid is the weighted mean of (eta, phi) with weights clipped at 0 (an event
    whose weights are all <= 0 uses the plain mean). phi is averaged in a local chart
    around the event's highest-weight point, so events that straddle phi = +-pi are
    centred correctly.

    Shapes:
        eta, phi, weights: (P,) flat over the events; counts: (n,) with sum P
        -> eta_rel, phi_rel: (P,) float32
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    if len(eta) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    event = np.repeat(np.arange(n), counts)
    wsum = np.bincount(event, w, minlength=n)
    w = np.where(wsum[event] > 0, w, 1.0)
    wsum = np.bincount(event, w, minlength=n)
    # reference point per event: highest weight (first of each event after sorting)
    order = np.lexsort((-w, event))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nonempty = counts > 0
    ref = np.zeros(n)
    ref[nonempty] = phi[order[starts[nonempty]]]
    dphi = wrap_phi(phi - ref[event])
    eta_c = np.bincount(event, w * eta, minlength=n) / np.where(wsum > 0, wsum, 1.0)
    dphi_c = np.bincount(event, w * dphi, minlength=n) / np.where(wsum > 0, wsum, 1.0)
    eta_rel = eta - eta_c[event]
    phi_rel = wrap_phi(dphi - dphi_c[event])
    return eta_rel.astype(np.float32), phi_rel.astype(np.float32)


def fixed_label(path: Path, cfg: "DataConfig") -> int | None:
    """The class index of every event of ``path`` when labels come from the config.

    Precedence: ``reader.file_labels`` (first glob pattern matching the file name), then
    ``reader.label``; ``None`` means labels are read from ``reader.label_key``.
    """
    import fnmatch

    reader = cfg.reader
    if reader.file_labels:
        for pattern, index in reader.file_labels.items():
            if fnmatch.fnmatch(path.name, pattern):
                return index
        patterns = ", ".join(map(repr, reader.file_labels))
        raise DataError(f"{path.name}: file name matches no reader.file_labels pattern; patterns: {patterns}")
    return reader.label
