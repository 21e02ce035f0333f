"""Neighbour lists for every event of a point-cloud chunk."""

from __future__ import annotations

import numpy as np

from graphevent.data.knn import knn_chunk, knn_neighbours, resolve_backend


class KNNGraph:
    """k nearest neighbours in (eta, phi) per event, no self loops, padded with -1.

    With the ``scipy`` backend (``auto``) the search is exact and ties between
    equidistant nodes go to the lower node index (see :func:`knn_chunk`); pass
    ``lattice_pos`` for image nodes so that equal pixel distances are equal in float64.

    Args:
        k: neighbours per node (events with n <= k nodes connect to all n - 1 others).
        backend: ``auto``, ``scipy``, ``torch`` or ``torch_cluster``.

    Shapes:
        pos: (P, 2), counts: (n,) -> (P, k) int32 neighbour indices local to each event.
    """

    def __init__(self, k: int = 16, backend: str = "auto") -> None:
        self.k = k
        self.backend = resolve_backend(backend)

    def __repr__(self) -> str:
        return f"KNNGraph(k={self.k}, backend={self.backend!r})"

    def __call__(self, pos: np.ndarray, counts: np.ndarray, lattice_pos: np.ndarray | None = None) -> np.ndarray:
        if self.backend == "scipy":
            return knn_chunk(pos if lattice_pos is None else lattice_pos, counts, self.k)
        out = np.full((len(pos), self.k), -1, dtype=np.int32)
        start = 0
        for n in counts:
            n = int(n)
            if n:
                out[start : start + n] = knn_neighbours(pos[start : start + n], self.k, self.backend)
            start += n
        return out
