"""Model-time kNN graphs: torch tensors with a ``batch`` vector, per event, never across events.

The model-side twin of :mod:`graphevent.data.knn` (numpy, preprocessing), with its
conventions: no self loops; an event with ``n <= k`` nodes connects each node to all
``n - 1`` others; ``edge_index`` rows are (source = neighbour j, target = node i).
Plain torch, no compiled extensions; differentiable inputs allowed (indices only).
"""

from __future__ import annotations

from graphevent.utils.geometry import wrap_deltas

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
        block_elements: distances held at a time (default
            :data:`~graphevent.nn.layers.dense_knn.KNN_BLOCK_ELEMENTS`): larger batches run in
            blocks of query nodes, with the same graph.

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

    from graphevent.nn.layers.dense_knn import KNN_BLOCK_ELEMENTS, dense_knn

    if batch is None:
        batch = x.new_zeros(x.size(0), dtype=torch.long)
    dense, mask = to_dense_batch(x.detach(), batch, batch_size=num_events)  # (B, M, D), (B, M)
    m = dense.shape[1]
    # the padded models' kNN (the same neighbours, in the same order), then flat node indices
    idx, valid = dense_knn(dense, mask, min(k, max(m - 1, 1)), dense.size(-1) <= 3, False, pixel_size, periods,
                           block_elements or KNN_BLOCK_ELEMENTS)
    counts = mask.sum(1)
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    tgt = (starts[:, None] + torch.arange(m, device=x.device)[None]).unsqueeze(-1).expand_as(idx)
    src = starts[:, None, None] + idx
    return torch.stack([src, tgt])[:, valid]  # one boolean index: one host sync on a GPU


def edge_features(pos, edge_index, periods=None):
    """Torch version of :func:`graphevent.data.knn.edge_features_np`: ``(E, 3)`` (deta, dphi,
    dR), wrapped along the periodic axes of ``periods`` (``DatasetInfo.periods``)."""
    import torch

    d = wrap_deltas(pos[edge_index[0]] - pos[edge_index[1]], periods)
    return torch.cat([d, d.norm(dim=1, keepdim=True)], dim=1)
