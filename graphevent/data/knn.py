"""k-nearest-neighbour graphs in (eta, phi), without compiled extensions.

Entry points:

* :func:`knn_chunk` — preprocessing (``scipy`` / ``auto`` backend): a whole chunk of events
  with one ``scipy.spatial.cKDTree``, exact, ties between equidistant nodes broken by
  node index, so each event's lists depend on that event alone.
* :func:`knn_neighbours` — numpy in / numpy out, one event at a time with
  ``scipy.spatial.cKDTree`` (measured fastest here, see ``scripts/bench_preprocess.py``),
  or batched torch ``cdist + topk``, or ``torch_cluster.knn`` when installed.
* inside models (torch tensors with a ``batch`` vector): :func:`graphevent.nn.layers.knn.knn_graph`
  (the model layer must not import ``data``), with the same conventions.

Periodic axes (``periods``, one entry per position axis, 0 where it does not wrap;
see :mod:`graphevent.utils.geometry`): distances wrap around (phi = +3.13 and -3.13 are 0.03
apart on a full detector). ``periods=None`` (jet crops) gives exactly the lists of before.

Convention everywhere: no self loops; an event with ``n <= k`` nodes connects each node to
all ``n - 1`` others; neighbour lists are padded with ``-1``; ``edge_index`` rows are
(source = neighbour j, target = node i), PyG's ``flow="source_to_target"``.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from graphevent.utils.geometry import is_periodic, wrap_deltas

BACKENDS = ("scipy", "torch", "torch_cluster")


def available_backends() -> list[str]:
    """Backends importable in this environment (scipy and torch are hard dependencies)."""
    out = ["scipy", "torch"]
    if importlib.util.find_spec("torch_cluster") is not None:
        out.append("torch_cluster")
    return out


def resolve_backend(name: str) -> str:
    """``auto`` -> ``scipy``: cKDTree per event beat batched torch cdist+topk and torch-cluster
    on this project's reference CPU (scripts/bench_preprocess.py prints all three)."""
    if name == "auto":
        return "scipy"
    if name == "torch_cluster" and "torch_cluster" not in available_backends():
        from graphevent.errors import ConfigError

        raise ConfigError("graph.knn_backend: 'torch_cluster' is not installed; use auto, scipy or torch")
    return name


def _drop_self(idx: np.ndarray, n: int, k_eff: int) -> np.ndarray:
    """Remove each row's own index from (n, k_eff + 1) candidates -> (n, k_eff).

    With duplicate positions the node itself may not come first, so remove by index; rows
    where it is absent (ties beyond the list) drop their last candidate instead.
    """
    own = np.arange(n)[:, None]
    is_self = idx == own
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    return idx[~is_self].reshape(n, k_eff)


def _knn_scipy(pos: np.ndarray, k_eff: int) -> np.ndarray:
    from scipy.spatial import cKDTree

    n = len(pos)
    _, idx = cKDTree(pos).query(pos, k=k_eff + 1)
    return _drop_self(np.asarray(idx).reshape(n, k_eff + 1), n, k_eff)


def _knn_torch(pos: np.ndarray, k_eff: int) -> np.ndarray:
    import torch

    p = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float32))
    d = torch.cdist(p, p)
    d.fill_diagonal_(float("inf"))
    return d.topk(k_eff, dim=1, largest=False).indices.numpy()


def _knn_torch_cluster(pos: np.ndarray, k_eff: int) -> np.ndarray:
    import torch
    import torch_cluster

    p = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float32))
    ei = torch_cluster.knn_graph(p, k=k_eff, loop=False, flow="source_to_target")
    n = len(pos)
    src, dst = ei[0].numpy(), ei[1].numpy()
    order = np.argsort(dst, kind="stable")
    return src[order].reshape(n, k_eff)


def knn_neighbours(pos: np.ndarray, k: int, backend: str = "scipy", periods=None) -> np.ndarray:
    """Neighbour lists of one event.

    Args:
        pos: ``(n, 2)`` float positions.
        k: neighbours per node.
        backend: ``scipy``, ``torch`` or ``torch_cluster``.
        periods: per axis, its period where it wraps (``None``: nothing wraps). ``scipy`` wraps
            with cKDTree's ``boxsize``, ``torch`` takes all pairs; ``torch_cluster`` cannot wrap.

    Returns:
        ``(n, k)`` int32; row i holds the ``min(k, n - 1)`` nearest other nodes of i,
        padded with -1.
    """
    n = len(pos)
    out = np.full((n, k), -1, dtype=np.int32)
    if n <= 1:
        return out
    k_eff = min(k, n - 1)
    periodic = is_periodic(periods)
    if periodic and backend == "torch_cluster":
        from graphevent.errors import ConfigError

        raise ConfigError("graph.knn_backend: 'torch_cluster' cannot wrap a periodic axis (geometry.periodic); use auto, scipy or torch")
    if k_eff == n - 1 or (periodic and backend == "torch"):  # all pairs, ordered by distance (wrapped)
        d = (wrap_deltas(pos[:, None, :] - pos[None, :, :], periods) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        idx = np.argsort(d, axis=1, kind="stable")[:, :k_eff]
    elif periodic and backend == "scipy":
        idx = _knn_scipy_periodic(pos, k_eff, periods)
    elif backend == "scipy":
        idx = _knn_scipy(pos, k_eff)
    elif backend == "torch":
        idx = _knn_torch(pos, k_eff)
    elif backend == "torch_cluster":
        idx = _knn_torch_cluster(pos, k_eff)
    else:
        from graphevent.errors import ConfigError

        raise ConfigError(f"graph.knn_backend: invalid value {backend!r}; expected one of auto, {', '.join(BACKENDS)}")
    out[:, :k_eff] = idx
    return out


def _knn_scipy_periodic(pos: np.ndarray, k_eff: int, periods) -> np.ndarray:
    from scipy.spatial import cKDTree

    p, box = _periodic_box(np.asarray(pos, np.float64), periods)
    _, idx = cKDTree(p, boxsize=box).query(p, k=k_eff + 1)
    n = len(pos)
    return _drop_self(np.asarray(idx).reshape(n, k_eff + 1), n, k_eff)


def _periodic_box(p: np.ndarray, periods) -> tuple[np.ndarray, np.ndarray]:
    """Positions moved into ``[0, period)`` along periodic axes, and cKDTree's ``boxsize``
    (0 = an axis that does not wrap)."""
    p = p.copy()
    box = np.zeros(p.shape[1])
    for axis, period in enumerate(periods or ()):
        if period and axis < p.shape[1]:
            q = np.mod(p[:, axis] + period / 2.0, period)
            q[q >= period] = 0.0  # np.mod of a tiny negative value rounds up to period
            p[:, axis] = q
            box[axis] = period
    return p, box


def knn_chunk(pos: np.ndarray, counts: np.ndarray, k: int, extra: int = 4, periods=None) -> np.ndarray:
    """Exact neighbour lists for many events at once with ONE cKDTree, ties broken by index.

    Each row holds the ``min(k, n - 1)`` nearest other nodes of the node's event in the
    order (distance, node index): among equidistant candidates the lower index comes
    first and wins a place at the k-th distance. The result depends on each event alone
    (not on which events share the chunk). Distances are float64; give positions on the
    pixel lattice (:attr:`PointCloudChunk.lattice_pos`) so equidistant pixels tie exactly.

    How: events are moved apart along axis 0 by more than any distance inside an event,
    and every node asks the tree for its ``k + 1 + extra`` nearest points (itself
    included). A row is settled when all nodes at its k-th distance were returned (the
    last returned point is farther) or its whole event was; the other rows (about 3 % on
    the Pythia sample with ``extra=4``) ask again for four times as many points.

    With ``periods`` (per axis, its period, 0 where it does not wrap), the tree wraps those axes
    (cKDTree's ``boxsize``) and events are moved apart along an extra axis instead.

    Shapes:
        pos: (P, 2), counts: (n,) -> (P, k) int32, indices local to each event, -1 pad.
    """
    from scipy.spatial import cKDTree

    n_pts = len(pos)
    out = np.full((n_pts, k), -1, dtype=np.int32)
    if n_pts == 0 or k < 1:
        return out
    counts = np.asarray(counts, dtype=np.int64)
    ev = np.repeat(np.arange(len(counts)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)  # first node of each node's event
    p = np.array(pos, dtype=np.float64)
    box = None
    if is_periodic(periods):
        p, box = _periodic_box(p, periods)
        p = np.concatenate([p, np.zeros((n_pts, 1))], axis=1)  # the axis events are moved apart on
        box = np.append(box, 0.0)
    extent = float(np.abs(p).max())
    # points of two events are >= gap - 2 * extent apart, more than any distance inside an
    # event (<= 2 * sqrt(2) * extent); an integer gap keeps lattice positions exact
    gap = float(np.ceil(6.0 * extent)) + 1.0
    within = gap - 2.0 * extent
    p[:, 0 if box is None else -1] += ev * gap
    tree = cKDTree(p) if box is None else cKDTree(p, boxsize=box)
    rows = np.arange(n_pts)
    kq = k + 1 + extra
    while len(rows):
        kq = min(kq, n_pts)
        dist, idx = tree.query(p[rows], k=kq)
        dist, idx = dist.reshape(len(rows), kq), idx.reshape(len(rows), kq)
        n_ev = counts[ev[rows]]
        settled = (n_ev <= kq) | (dist[:, -1] > dist[:, min(k, kq - 1)])
        done = rows[settled]
        if len(done):
            out[done] = _select(dist[settled], idx[settled], done, start[done], within, k)
        rows = rows[~settled]
        kq *= 4
    return out


def _select(dist: np.ndarray, idx: np.ndarray, rows: np.ndarray, row_start: np.ndarray, within: float, k: int) -> np.ndarray:
    """First k candidates of each row by (distance, local index), own event only, no self.

    ``dist`` rows are sorted ascending (cKDTree order), so the number of distinct
    distances before a column is its distance rank; the sort key is (rank, local index).
    Points of other events (and cKDTree's padding, at infinite distance) lie farther
    than ``within``.
    """
    n_rows, kq = idx.shape
    key = np.zeros((n_rows, kq), np.int64)
    np.cumsum(dist[:, 1:] != dist[:, :-1], axis=1, out=key[:, 1:])
    key <<= 32
    key += idx
    key -= row_start[:, None]
    big = np.iinfo(np.int64).max
    key[(dist >= within) | (idx == rows[:, None])] = big
    key.sort(axis=1)
    key = key[:, :k]
    nbr = np.full((n_rows, k), -1, np.int32)
    nbr[:, : key.shape[1]] = np.where(key == big, -1, key & 0xFFFFFFFF)
    return nbr


def lattice_coords(pos: np.ndarray) -> np.ndarray | None:
    """int32 coordinates of positions on a (half-)integer lattice, or None if they are not.

    Integer positions are returned as they are; half-integers (cells of even size) are
    doubled. Distances keep their order, so neighbour lists are the same.
    """
    if len(pos) == 0:
        return np.zeros((0, 2), np.int32)
    for scale in (1.0, 2.0):
        q = np.asarray(pos, np.float64) * scale
        r = np.rint(q)
        if np.array_equal(q, r) and np.abs(r).max() < 2**14:
            return r.astype(np.int32)
    return None


def knn_lattice_chunk(coords: np.ndarray, counts: np.ndarray, k: int, max_dense: int = 1024,
                      budget: int = 1 << 18, periods=None) -> np.ndarray:
    """Exact neighbour lists of integer-lattice events by vectorised brute force.

    Same result as :func:`knn_chunk` (order (distance, node index), own event only, no
    self, -1 pad), computed without a tree: events are grouped by size, each group's
    (events, n, n) squared distances become int32 keys ``d2 * n + j`` whose sort order is
    (distance, index), and the k smallest keys of each row are the neighbours. Exact
    integer arithmetic, so equidistant pixels always tie. Groups hold about ``budget``
    keys, so they stay in the CPU cache (2x faster than 4M-key groups here). Events larger than
    ``max_dense`` nodes (O(n^2) work), or whose keys would not fit in int32, go to
    :func:`knn_chunk`, which gives the same lists.

    ``periods``: per axis, its integer period in lattice units where it wraps (0 where it
    does not; ``None``: nothing wraps); a wrapped difference is ``min(|d|, period - |d|)``, still exact.

    Shapes:
        coords: (P, 2) int32 (see :func:`lattice_coords`), counts: (n,) -> (P, k) int32.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_pts = len(coords)
    out = np.full((n_pts, k), -1, dtype=np.int32)
    if n_pts == 0 or k < 1:
        return out
    starts = np.cumsum(counts) - counts
    span = coords.max(0).astype(np.int64) - coords.min(0)
    max_d2 = int((span**2).sum())
    dense = (counts <= max_dense) & (max_d2 * (counts + 1) < 2**31)
    big_ev = np.flatnonzero(~dense & (counts > 0))
    if len(big_ev):
        sel = np.concatenate([np.arange(starts[e], starts[e] + counts[e]) for e in big_ev])
        out[sel] = knn_chunk(coords[sel].astype(np.float64), counts[big_ev], k, periods=periods)
    order = np.argsort(counts, kind="stable")
    order = order[dense[order] & (counts[order] > 1)]
    dt = np.int16 if max_d2 < 2**15 else np.int32  # half the memory traffic for squared distances
    xy = coords.astype(dt)
    i = 0
    while i < len(order):
        m0 = int(counts[order[i]])
        evs = order[i : i + max(1, budget // (m0 * m0))]
        m = int(counts[evs[-1]])  # sorted by size: the largest of the group
        evs = evs[: max(1, budget // (m * m))]
        i += len(evs)
        cnt = counts[evs]
        ar = np.arange(m)
        slot_ok = ar[None, :] < cnt[:, None]  # (B, m)
        node = np.where(slot_ok, starts[evs][:, None] + ar[None, :], 0)
        r, c = xy[node, 0], xy[node, 1]
        d2 = _lattice_delta(r[:, :, None] - r[:, None, :], periods, 0)
        d2 *= d2
        dc = _lattice_delta(c[:, :, None] - c[:, None, :], periods, 1)
        dc *= dc
        d2 += dc
        key = np.multiply(d2, m, dtype=np.int32)
        del d2, dc
        key += ar.astype(np.int32)
        big = np.iinfo(np.int32).max
        np.copyto(key, big, where=~slot_ok[:, None, :])  # padding columns
        key[:, ar, ar] = big  # self
        kk = min(k, m - 1)
        if kk < m - 1:
            key = np.partition(key, kk - 1, axis=2)[:, :, :kk]
        key = np.sort(key, axis=2)[:, :, :kk]
        nbr = np.where(key == big, -1, key % m).astype(np.int32)
        out[node[slot_ok], :kk] = nbr[slot_ok]
    return out


def _lattice_delta(d: np.ndarray, periods, axis: int) -> np.ndarray:
    """Integer coordinate differences, wrapped to ``min(|d|, period - |d|)`` along a periodic axis."""
    period = periods[axis] if periods is not None and axis < len(periods) else None
    if not period:
        return d
    d = np.abs(d)
    return np.minimum(d, np.asarray(int(period), d.dtype) - d)


def neighbours_to_edge_index(nbr: np.ndarray, offset: int = 0) -> np.ndarray:
    """(n, k) padded neighbour lists -> (2, E) edge_index (row 0 source j, row 1 target i)."""
    n, k = nbr.shape
    tgt = np.repeat(np.arange(n, dtype=np.int64), k)
    src = nbr.reshape(-1).astype(np.int64)
    keep = src >= 0
    return np.stack([src[keep] + offset, tgt[keep] + offset])


def edge_features_np(pos: np.ndarray, edge_index: np.ndarray, periods=None) -> np.ndarray:
    """(E, 3) float32: (delta eta, delta phi, delta R) of neighbour minus node, wrapped along
    periodic axes (``periods``; :func:`graphevent.utils.geometry.wrap_deltas`)."""
    d = wrap_deltas(pos[edge_index[0]] - pos[edge_index[1]], periods)
    return np.concatenate([d, np.sqrt((d**2).sum(1, keepdims=True))], axis=1).astype(np.float32)
