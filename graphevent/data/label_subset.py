"""The labelled subset used when training on a fraction of the labels (``--label-fraction``).

It depends only on event ids, labels and the seed, never on worker count or model, so
training, probes and studies see the same labelled events. numpy only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphevent.errors import ConfigError

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 finaliser: a well-mixed 64-bit hash of each element."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def label_subset(
    event_ids: Sequence[int] | np.ndarray,
    fraction: float,
    seed: int,
    labels: Sequence[int] | np.ndarray | None = None,
    min_per_class: int = 0,
) -> np.ndarray:
    """Positions of the events whose labels are used when training on a fraction of them.

    Each event gets a key ``hash(seed, event_id)``; the ``round(fraction * n)`` events with
    the smallest keys are kept (at least one). With ``labels``, every class then gets at
    least ``min_per_class`` events (all of its events if it has fewer): its smallest-key
    events are added, so at tiny fractions no class is missing or nearly missing. The
    subset is *not* stratified otherwise: class proportions vary from seed to seed like
    those of a random draw, which is part of the spread a label-efficiency study measures.

    The choice depends only on the event ids, labels and the seed, so it is the same on
    every run, for any number of workers, and a smaller fraction picks a subset of a larger
    one (also with the per-class minimum).

    Args:
        event_ids: ``(n,)`` dataset-wide event ids of the split.
        fraction: in (0, 1]; 1 keeps every event.
        seed: selection seed.
        labels: ``(n,)`` class index per event, for the per-class minimum; ``None``: no minimum.
        min_per_class: least events kept per class (with ``labels``); 0 = no minimum.

    Returns:
        ``(m,)`` sorted int64 positions into ``event_ids``; ``m >= max(1, round(fraction * n))``.
    """
    ids = np.asarray(event_ids, dtype=np.int64)
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"train.label_fraction: invalid value {fraction}; expected 0 < fraction <= 1")
    if min_per_class < 0:
        raise ConfigError(f"train.min_labels_per_class: invalid value {min_per_class}; expected >= 0")
    n = len(ids)
    if labels is not None and len(labels) != n:
        raise ConfigError(f"label_subset: {len(labels)} labels for {n} events; expected one label per event")
    if fraction >= 1.0 or n == 0:
        return np.arange(n, dtype=np.int64)
    keys = _splitmix64(ids.view(np.uint64) ^ _splitmix64(np.array([seed], dtype=np.uint64)))
    keep = max(1, int(round(fraction * n)))
    order = np.lexsort((ids, keys))  # ties (practically impossible) broken by event id
    chosen = np.zeros(n, dtype=bool)
    chosen[order[:keep]] = True
    if labels is not None and min_per_class > 0:
        ordered = np.asarray(labels)[order]
        for c in np.unique(ordered):  # the class's smallest keys: already kept ones come first
            chosen[order[ordered == c][:min_per_class]] = True
    return np.flatnonzero(chosen).astype(np.int64)
