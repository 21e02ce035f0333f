"""Model-time kNN graphs: torch tensors with a ``batch`` vector, per event, never across events.

The model-side twin of :mod:`graphevent.data.knn` (numpy, preprocessing), with its
conventions: no self loops; an event with ``n <= k`` nodes connects each node to all
``n - 1`` others; ``edge_index`` rows are (source = neighbour j, target = node i).
Plain torch, no compiled extensions; differentiable inputs allowed (indices only).
"""

from __future__ import annotations

from graphevent.utils.geometry import wrap_deltas

#: distances computed at a time by :func:`knn_graph` (``B x rows x M``): above it, blocks of
#: query nodes (128 jets of 300 nodes fit in one block, 4 events of 5,000 nodes take 6)
KNN_BLOCK_ELEMENTS = 2**24


def _nearest(dense, mask, r0: int, r1: int, k_eff: int, pixel_size, periods):
    """The ``k_eff`` nearest other valid nodes of query nodes ``r0 .. r1 - 1`` of each event:
    ``(dist, idx)``, each (B, r1 - r0, k_eff)."""
    import torch

    m = dense.size(1)
    # positions: pairwise differences in float64, so a distance does not depend on the padding M
    # (cdist's matmul path, taken above 25 rows, rounds differently) and lattice ties stay exact,
    # with the bits of the exported models' kNN (dense_knn) and preprocessing's; features: cdist
    if dense.size(-1) <= 3:
        from graphevent.nn.layers.dense_knn import squared_position_distances

        d = squared_position_distances(
            dense, pixel_size, periods, None if (r0, r1) == (0, m) else (r0, r1)
        )  # (B, R, M) float64
    else:
        d = torch.cdist(dense[:, r0:r1].float(), dense.float(), compute_mode="use_mm_for_euclid_dist_if_necessary")
    invalid = ~(mask[:, r0:r1, None] & mask[:, None, :])
    eye = (torch.arange(r0, r1, device=dense.device)[:, None] == torch.arange(m, device=dense.device)[None])[None]
    d = d.masked_fill(invalid | eye, float("inf"))
    if dense.size(-1) <= 3:
        # positions sit on a pixel lattice, full of exact ties: a stable sort takes
        # equidistant neighbours in node order, as alone (topk's choice depends on M)
        dist, idx = d.sort(dim=-1, stable=True)
        # copies, not views: a view would keep the block's whole sorted (B, R, M) alive
        return dist[..., :k_eff].clone(), idx[..., :k_eff].clone()  # (B, R, k)
    # learned features: exact ties are improbable, and topk is ~4x faster than a sort
    return d.topk(k_eff, dim=-1, largest=False)  # (B, R, k)


def knn_graph(x, batch, k: int, num_events: int | None = None, pixel_size: tuple[float, float] | None = None,
              periods: tuple[float, float] | None = None, block_elements: int | None = None):
    """Batched kNN graph in any feature space, per event (plain torch).

    Args:
        x: ``(N, D)`` node coordinates (positions or features).
        batch: ``(N,)`` event index of each node, sorted (PyG batching), or ``None``.
        k: neighbours per node (fewer for events with ``<= k`` nodes).
        num_events: number of events ``B`` if known (saves reading ``batch.max()`` back from a GPU).
        pixel_size: for positions of an image dataset (``DatasetInfo.pixel_size``): distances
            on the pixel lattice, as preprocessing's
            (:func:`~graphevent.nn.layers.dense_knn.squared_position_distances`).
        periods: for positions, the dataset's periodic axes (``DatasetInfo.periods``):
            distances wrap along them (phi on a full detector); ``None``: nothing wraps.
        block_elements: distances held at a time (default :data:`KNN_BLOCK_ELEMENTS`): larger
            batches run in blocks of query nodes, with the same graph.

    Returns:
        ``edge_index (2, E)``: row 0 neighbour j, row 1 node i; no self loops. For
        positions (D <= 3), neighbours in the order (distance, node index), as the dataset's
        kNN (:func:`graphevent.data.knn.knn_chunk`): among neighbours at equal distance the
        lower node index wins, so an event gets the same graph in any batch, and the graph
        stored by preprocessing.

    Shapes:
        x: (N, D), batch: (N,) -> edge_index: (2, E) with E <= N * k.
    """
    import torch
    from torch_geometric.utils import to_dense_batch

    if batch is None:
        batch = x.new_zeros(x.size(0), dtype=torch.long)
    dense, mask = to_dense_batch(x.detach(), batch, batch_size=num_events)  # (B, M, D), (B, M)
    b, m, _ = dense.shape
    k_eff = min(k, max(m - 1, 1))
    # blocks of query nodes: at most ~block_elements distances at a time (whole events of
    # thousands of nodes); each row's neighbours are those of the full matrix
    rows = max(1, (block_elements or KNN_BLOCK_ELEMENTS) // max(b * m, 1))
    parts = [_nearest(dense, mask, r0, min(m, r0 + rows), k_eff, pixel_size, periods) for r0 in range(0, max(m, 1), rows)]
    dist = torch.cat([p[0] for p in parts], 1) if len(parts) > 1 else parts[0][0]
    idx = torch.cat([p[1] for p in parts], 1) if len(parts) > 1 else parts[0][1]
    valid = torch.isfinite(dist) & mask[:, :, None]
    # dense -> flat node indices
    counts = mask.sum(1)
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    tgt = (starts[:, None] + torch.arange(m, device=x.device)[None]).unsqueeze(-1).expand(-1, -1, k_eff)
    src = starts[:, None, None] + idx
    return torch.stack([src, tgt])[:, valid]  # one boolean index: one host sync on a GPU


def edge_features(pos, edge_index, periods=None):
    """Torch version of :func:`graphevent.data.knn.edge_features_np`: ``(E, 3)`` (deta, dphi,
    dR), wrapped along the periodic axes of ``periods`` (``DatasetInfo.periods``)."""
    import torch

    d = wrap_deltas(pos[edge_index[0]] - pos[edge_index[1]], periods)
    return torch.cat([d, d.norm(dim=1, keepdim=True)], dim=1)
