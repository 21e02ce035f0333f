"""Differences of positions on axes that may wrap around (phi on a full detector).

The one periodic-aware delta of graphevent: preprocessing's kNN and edge features
(:mod:`graphevent.data.knn`), the models' kNN and edge features (:mod:`graphevent.nn.layers.knn`,
:mod:`graphevent.nn.layers.dense_knn`), masking patches, augmentations and the exported kNN
all measure ``pos[j] - pos[i]`` through :func:`wrap_deltas`. Which axes wrap, and their
period, is declared by the data config's ``geometry:`` section and recorded with the dataset
(``DatasetInfo.periods``).

``periods`` is one entry per position axis, ``(eta, phi)``: the period (e.g. ``2 pi`` for phi)
or ``0`` for an axis that does not wrap; ``None`` for the whole tuple means nothing wraps
(jet-centred crops). Works on numpy arrays and torch tensors alike (no torch import here),
and compiles with TorchScript (the exported models' kNN).
"""

from __future__ import annotations

from typing import Any, Sequence


def is_periodic(periods: Sequence[float] | None) -> bool:
    """Whether any axis of ``periods`` wraps."""
    return periods is not None and any(p for p in periods)


def wrap_delta(d, period: float | None):
    """``d - period * round(d / period)``: a difference along a periodic axis, in ``[-period/2, period/2]``.

    A difference already inside that range is returned bit for bit (``round`` gives 0), so
    wrapping never changes a jet crop's numbers. ``period`` 0 or ``None``: ``d`` unchanged.

    Shapes:
        d: numpy array or torch tensor, any shape -> the same shape and type
    """
    if period is None or period == 0.0:
        return d
    return d - period * (d / period).round()


def wrap_deltas(d: Any, periods: Sequence[float] | None) -> Any:
    """:func:`wrap_delta` on each column of ``d`` whose axis has a period (a new array;
    ``d`` itself when nothing wraps).

    Shapes:
        d: (..., D) -> (..., D)
    """
    if not is_periodic(periods):
        return d
    out = d * 1  # a copy, numpy or torch, keeping autograd
    for axis, period in enumerate(periods):
        if period and axis < d.shape[-1]:
            out[..., axis] = wrap_delta(d[..., axis], period)
    return out


def wrap_positions(pos: Any, periods: Sequence[float] | None) -> Any:
    """Positions moved into each periodic axis's range ``[-period/2, period/2]`` (a rotation
    in phi followed by this is the same event); non-periodic axes unchanged.

    Shapes:
        pos: (..., D) -> (..., D)
    """
    return wrap_deltas(pos, periods)
