"""Neighbour lists for every event of a point-cloud chunk."""

from __future__ import annotations

import numpy as np

from graphevent.data.knn import knn_chunk, knn_lattice_chunk, knn_neighbours, lattice_coords, resolve_backend


class KNNGraph:
    """k nearest neighbours in (eta, phi) per event, no self loops, padded with -1.

    With the ``scipy`` backend (``auto``) the search is exact and ties between
    equidistant nodes go to the lower node index. Image nodes (``lattice_pos`` on the
    pixel lattice) use integer brute force per event (:func:`knn_lattice_chunk`, about 2x
    faster than the tree on 1,024 Pythia jets), other points one cKDTree per chunk
    (:func:`knn_chunk`); both give the same lists.

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
            coords = None if lattice_pos is None else lattice_coords(lattice_pos)
            if coords is not None:  # image nodes on the pixel lattice: exact integer brute force
                return knn_lattice_chunk(coords, counts, self.k)
            return knn_chunk(pos if lattice_pos is None else lattice_pos, counts, self.k)
        out = np.full((len(pos), self.k), -1, dtype=np.int32)
        start = 0
        for n in counts:
            n = int(n)
            if n:
                out[start : start + n] = knn_neighbours(pos[start : start + n], self.k, self.backend)
            start += n
        return out
