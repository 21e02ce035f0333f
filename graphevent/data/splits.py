"""Train/val/test assignment by hashing the event id: independent of chunking and workers."""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val", "test")


def hash_uniform(source: str, indices: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per event from blake2b(seed, source name, index).

    The event id is the source file's name (not its directory) plus the event's index in
    it, so moving files or changing ``--workers``/``chunk_size`` never moves an event.
    """
    key = f"{seed}:{source}:".encode()
    out = np.empty(len(indices), dtype=np.float64)
    for j, i in enumerate(np.asarray(indices, dtype=np.int64)):
        h = hashlib.blake2b(key + str(int(i)).encode(), digest_size=8).digest()
        out[j] = int.from_bytes(h, "little") / 2.0**64
    return out


def assign_splits(source: str, indices: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """int8 split code per event: 0 train, 1 val, 2 test."""
    u = hash_uniform(source, indices, seed)
    edges = np.cumsum(fractions)[:2]
    return np.searchsorted(edges, u, side="right").astype(np.int8)
