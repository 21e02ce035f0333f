"""kNN on padded ``(B, N, D)`` tensors: plain torch ops that export.

:func:`dense_knn` finds each node's neighbours in its event, in the order preprocessing does
(:mod:`graphevent.data.knn`): dense masked pairwise distances and a sort/top-k over a fixed
``k``, every shape a function of the input's ``B`` and ``N`` only, so the models that run on
padded events (EdgeConv's) train and export with the same code; the flat-batch twin is
:func:`graphevent.nn.layers.knn.knn_graph`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from graphevent.utils.geometry import wrap_delta


def _on_lattice(q: Tensor) -> Tensor:
    """``q`` rounded to the nearest integer where it is within ``1e-3`` of one (float32
    positions of pixels, in half-pixel units), unchanged elsewhere."""
    r = torch.round(q)
    return torch.where((q - r).abs() <= 1e-3, r, q)


def _lattice_period(period: float, size: float) -> float:
    """A period in the units :func:`squared_position_distances` puts positions in (``size``:
    the axis's pixel size), rounded to the half-pixel lattice as :func:`_on_lattice` rounds
    positions (a 360-column image: exactly 360 pixels); 0 stays 0."""
    q = period * 2.0 / size
    r = float(round(q))
    return (r if abs(q - r) <= 1e-3 else q) * 0.5


def squared_position_distances(
    x: Tensor, pixel_size: tuple[float, float] | None = None, periods: tuple[float, float] | None = None,
    rows: tuple[int, int] | None = None,
) -> Tensor:
    """Squared Euclidean distances between the nodes of each event, for positions (``D <= 3``):
    the order the dataset's kNN (:mod:`graphevent.data.knn`) takes neighbours in.

    With ``pixel_size`` (image datasets: ``DatasetInfo.pixel_size``), positions are first put
    back on the pixel lattice, in eta-pixel units as preprocessing's ``lattice_pos``:
    ``round(2 eta / pixel_eta) / 2`` and ``round(2 phi / pixel_phi) / 2`` (half-pixels: collapsed
    cells of even size); a phi difference is scaled by ``pixel_phi / pixel_eta`` after it is taken
    (and wrapped), so neighbours at mirror-image offsets tie exactly with non-square pixels too. Equidistant pixels then tie exactly, as in
    preprocessing, whatever the float32 rounding of the positions (``(r + 1) * 0.0174 - r * 0.0174``
    is not ``r * 0.0174 - (r - 1) * 0.0174``). A coordinate farther than ``1e-3`` half-pixels
    from the lattice (e.g. rotated by an augmentation) is kept as it is, in the same units.
    Without ``pixel_size``, the positions as given. Non-square pixels: preprocessing's cKDTree
    compares rounded float64 distances of ``phi * pixel_phi / pixel_eta``, so a few of its
    ties, there, are not ties here (no shipped data config has non-square pixels).

    Then ``(x_i0 - x_j0)^2 + (x_i1 - x_j1)^2 + ...`` in float64, one correctly rounded
    operation at a time, so every backend (torch on CPU or GPU, TorchScript, ONNX Runtime)
    gets the same bits, those scipy's cKDTree compares in preprocessing (``torch.cdist`` and
    ``addcmul`` fuse the square and the sum and round them differently). No square root: its
    rounding differs between backends (torch's float64 ``sqrt(2.0)`` on a CPU is one unit in
    the last place below the correctly rounded value). The one definition used by
    :func:`~graphevent.nn.layers.knn.knn_graph` and :func:`dense_knn`. No gradient (distances
    only choose neighbours).

    With ``periods`` (``DatasetInfo.periods``: per axis, its period where it wraps, e.g. phi on
    a full detector), each difference along a periodic axis is wrapped
    (:func:`graphevent.utils.geometry.wrap_delta`, in the same lattice units), so nodes at
    phi = +3.13 and -3.13 are 0.03 apart; ``None``: the distances of before, bit for bit.

    Shapes:
        x: (B, N, D) -> (B, N, N) float64
    """
    x = x.detach().double()
    period_eta, period_phi = (0.0, 0.0) if periods is None else (float(periods[0]), float(periods[1]))
    phi_scale: Optional[Tensor] = None
    if pixel_size is not None:
        eta = _on_lattice(x[..., 0] * (2.0 / pixel_size[0])) * 0.5
        phi = _on_lattice(x[..., 1] * (2.0 / pixel_size[1])) * 0.5
        # periods in the same units, on the lattice as the positions are
        period_eta, period_phi = _lattice_period(period_eta, pixel_size[0]), _lattice_period(period_phi, pixel_size[1])
        if pixel_size[1] != pixel_size[0]:
            # non-square pixels: phi differences (whole or half pixels, exact) are scaled after
            # wrapping, so mirror-image neighbours tie exactly; a float64 tensor, not a Python
            # float, which an ONNX exporter would bake in as float32
            phi_scale = torch.full((), pixel_size[1] / pixel_size[0], dtype=torch.float64, device=x.device)
        x = torch.stack([eta, phi], dim=-1)
    q = x if rows is None else x[:, rows[0] : rows[1]]
    d = wrap_delta(torch.sub(q[:, :, None, 0], x[:, None, :, 0]), period_eta)
    d.mul_(d)
    for c in range(1, x.shape[-1]):
        t = wrap_delta(torch.sub(q[:, :, None, c], x[:, None, :, c]), period_phi if c == 1 else 0.0)
        if c == 1 and phi_scale is not None:
            t = t * phi_scale
        d.add_(t.mul_(t))
    return d


#: distances held at a time by :func:`dense_knn` outside export (``B x rows x N``): above it,
#: blocks of query nodes (128 jets of 300 nodes fit in one block, 4 events of 5,000 nodes take 6)
KNN_BLOCK_ELEMENTS = 2**24


def dense_knn(
    h: Tensor, mask: Tensor, k: int, stable: bool, onnx: bool = False, pixel_size: Optional[tuple[float, float]] = None,
    periods: Optional[tuple[float, float]] = None, block_elements: int = KNN_BLOCK_ELEMENTS, exact: bool = True,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest other valid nodes of every node, per event.

    Args:
        h: node coordinates, padded.
        mask: valid nodes.
        k: neighbours per node (fewer, flagged invalid, in events with ``<= k`` nodes).
        stable: positions: :func:`squared_position_distances`, equidistant neighbours in node order
            (as preprocessing); otherwise learned features (float64 distances, top-k: exact
            ties are improbable, and top-k is ~4x faster than a sort).
        onnx: tracing for ONNX, which has no stable sort: top-k, whose ONNX operator breaks
            ties by the lower index (the operator's specification, and ONNX Runtime's
            behaviour, tested), i.e. the stable order; and one block of query nodes.
        pixel_size: with ``stable``, the dataset's pixel size: distances on the pixel lattice
            (see :func:`squared_position_distances`).
        periods: with ``stable``, the dataset's periodic axes (``DatasetInfo.periods``):
            distances wrap along them.
        block_elements: distances held at a time outside ONNX: larger inputs (whole events of
            thousands of nodes) run in blocks of query nodes, with the same neighbours.
        exact: learned features: distances in float64, so eager and exported models (whose
            matrix products round differently) pick the same neighbours; ``False`` (training):
            float32, about twice as fast, a near tie may go either way.

    Shapes:
        h: (B, N, D), mask: (B, N) bool -> idx: (B, N, k) int64 in [0, N), valid: (B, N, k) bool
    """
    b, n = h.shape[0], h.shape[1]
    rows = n if onnx else max(1, block_elements // max(b * n, 1))
    if rows >= n:
        return _nearest(h, mask, k, stable, onnx, pixel_size, periods, 0, n, exact)
    idx: list[Tensor] = []
    valid: list[Tensor] = []
    for r0 in range(0, n, rows):
        i, v = _nearest(h, mask, k, stable, onnx, pixel_size, periods, r0, min(n, r0 + rows), exact)
        idx.append(i)
        valid.append(v)
    return torch.cat(idx, 1), torch.cat(valid, 1)


def _nearest(
    h: Tensor, mask: Tensor, k: int, stable: bool, onnx: bool, pixel_size: Optional[tuple[float, float]],
    periods: Optional[tuple[float, float]], r0: int, r1: int, exact: bool = True,
) -> tuple[Tensor, Tensor]:
    """:func:`dense_knn` of query nodes ``r0 .. r1 - 1``: ``(idx, valid)``, each (B, r1 - r0, k)."""
    n = h.shape[1]
    if stable:  # the same bits as preprocessing's, on every backend
        d = squared_position_distances(h, pixel_size, periods, None if r0 == 0 and r1 == n else (r0, r1))
    else:
        # float64: exporters' and torch's matmul roundings then never swap neighbours
        hd = h.detach().double() if exact else h.detach().float()
        sq = hd.pow(2).sum(-1)
        d = (sq[:, r0:r1, None] + sq[:, None, :] - 2.0 * hd[:, r0:r1] @ hd.transpose(1, 2)).clamp(min=0.0).sqrt()
    eye = (torch.arange(r0, r1, device=h.device)[:, None] == torch.arange(n, device=h.device)[None]).unsqueeze(0)
    invalid = ~(mask[:, r0:r1, None] & mask[:, None, :]) | eye
    d = d.masked_fill(invalid, float("inf"))
    # k columns of +inf: events (and inputs) with fewer than k + 1 nodes keep a static k
    pad = torch.full([d.shape[0], d.shape[1], k], float("inf"), dtype=d.dtype, device=d.device)
    d = torch.cat([d, pad], dim=-1)
    if onnx or not stable:
        dist, idx = d.topk(k, dim=-1, largest=False)
    else:
        dist, idx = stable_smallest(d, k)
    valid = torch.isfinite(dist) & mask[:, r0:r1, None]
    return idx.clamp(max=n - 1), valid


def stable_smallest(d: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest values of each row and their columns, in the order (value, column):
    the first ``k`` of a stable sort (equal values by the lower column, as preprocessing takes
    equidistant neighbours), found in time linear in the row's width (two top-k's and a
    cumulative sum; a sort of a whole event's 5,000-wide rows took most of a training step).

    Shapes:
        d: (B, R, W) with W >= k -> values (B, R, k), columns (B, R, k) int64
    """
    kth = d.topk(k, dim=-1, largest=False)[0][..., -1:]  # the k-th smallest value of each row
    below, tie = d < kth, d == kth
    room = k - below.sum(-1, keepdim=True)  # how many of the values equal to it are taken: the first ones
    take = below | (tie & (torch.cumsum(tie.to(torch.int64), dim=-1) <= room))
    w = d.shape[-1]
    rank = torch.arange(w, 0, -1, device=d.device, dtype=d.dtype)  # larger for lower columns
    cols = torch.where(take, rank, torch.zeros_like(d)).topk(k, dim=-1)[1]  # the taken columns, in column order
    values = d.gather(-1, cols)
    order = values.sort(dim=-1, stable=True)[1]  # by value; equal values keep column order
    return values.gather(-1, order), cols.gather(-1, order)


def gather_nodes(h: Tensor, idx: Tensor) -> Tensor:
    """``h[b, idx[b, i, j]]``.

    Shapes:
        h: (B, N, C), idx: (B, N, k) -> (B, N, k, C)
    """
    b, n, c = h.shape
    base = (torch.arange(b, device=h.device) * n).view(-1, 1, 1)
    return h.reshape(b * n, c)[(idx + base).reshape(-1)].reshape(b, n, idx.shape[2], c)


def dense_edge_geometry(positions: Tensor, idx: Tensor, periods: Optional[tuple[float, float]] = None) -> Tensor:
    """(delta eta, delta phi, delta R) of each neighbour slot, neighbour minus node, as
    :func:`~graphevent.nn.layers.knn.edge_features` (wrapped along the periodic axes of
    ``periods``, ``DatasetInfo.periods``).

    Shapes:
        positions: (B, N, 2), idx: (B, N, k) -> (B, N, k, 3)
    """
    d = gather_nodes(positions, idx) - positions[:, :, None, :]
    if periods is not None:
        d = torch.stack([wrap_delta(d[..., 0], periods[0]), wrap_delta(d[..., 1], periods[1])], dim=-1)
    return torch.cat([d, torch.linalg.vector_norm(d, dim=-1, keepdim=True)], dim=-1)


def lattice(info) -> Optional[tuple[float, float]]:
    """The dataset's pixel size (``DatasetInfo.pixel_size``) as :func:`dense_knn` takes it,
    ``None`` for point datasets: positions back on the pixel lattice, so the (eta, phi)
    neighbours (equidistant ones included) are those of the dataset's stored graph."""
    return None if info.pixel_size is None else (float(info.pixel_size[0]), float(info.pixel_size[1]))
