"""What every model reads off a PyG batch: its batch vector, its events' keys, its (eta, phi) graph."""

from __future__ import annotations

import logging

import torch
from torch import Tensor


def batch_vector(data) -> tuple[Tensor, int]:
    """``(batch (N,), num_events)`` of a PyG ``Batch``, or of a single ``Data`` (one event)."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.num_nodes, dtype=torch.long, device=data.x.device), 1
    return batch, int(data.num_graphs)


def event_keys(data, batch: Tensor, num_events: int) -> Tensor:
    """Per node, the dataset-wide ``event_id`` of its event (batch position if absent)."""
    event_id = getattr(data, "event_id", None)
    if event_id is None or event_id.numel() != num_events:
        return batch
    return event_id.view(-1).long()[batch]


def position_graph(data, k: int, data_k: int, pixel_size: tuple[float, float] | None = None,
                   periods: tuple[float, float] | None = None) -> tuple[Tensor, Tensor]:
    """The (eta, phi) kNN graph with ``k`` neighbours and its (deta, dphi, dR) edge features.

    The model's ``k`` wins: the dataset's ``edge_index``/``edge_attr`` are used when present
    and built with the same ``k`` (``data_k``, from ``DatasetInfo.k``); otherwise the graph
    is rebuilt per event in plain torch (:func:`graphevent.nn.layers.knn.knn_graph`, with
    the dataset's ``pixel_size`` for image datasets: the stored graph's neighbours and tie
    rule), and the first rebuild for a pair of values says so once in the log
    (:func:`graph_rebuild_notice`). ``periods`` (``DatasetInfo.periods``): distances and
    edge features wrap along the periodic axes, as the stored graph's.

    Shapes:
        -> edge_index (2, E), edge_attr (E, 3)
    """
    from graphevent.nn.layers.knn import edge_features, knn_graph

    edge_index = getattr(data, "edge_index", None)
    if edge_index is None or data_k != k:
        if edge_index is not None:
            graph_rebuild_notice(k, data_k)
        batch, num_events = batch_vector(data)
        edge_index = knn_graph(data.pos, batch, k, num_events, pixel_size, periods)
        return edge_index, edge_features(data.pos, edge_index, periods)
    edge_attr = getattr(data, "edge_attr", None)
    if edge_attr is None:
        edge_attr = edge_features(data.pos, edge_index, periods)
    return edge_index, edge_attr


_REBUILDS_NOTED: set[tuple[int, int]] = set()


def graph_rebuild_notice(k: int, data_k: int) -> bool:
    """Log, once per process and pair of values, that the model's ``k`` differs from the
    dataset's and the position graph is rebuilt at every forward. Returns whether it logged."""
    if (k, data_k) in _REBUILDS_NOTED:
        return False
    _REBUILDS_NOTED.add((k, data_k))
    logging.getLogger("graphevent").warning(
        "model.k = %d differs from the dataset's graph.k = %d: the model's k wins and its (eta, phi) "
        "graph is rebuilt at every forward (preprocess with --set graph.k=%d to reuse the stored one)",
        k, data_k, k,
    )
    return True


def padded_nodes(data) -> tuple[Tensor, Tensor, Tensor]:
    """A PyG batch as padded events: ``(features (B, M, F), positions (B, M, 2), mask (B, M))``,
    ``M`` its largest event, nodes in their order, padding zeros: the input of the models'
    padded forms (``forward_padded``), which train and export with the same code."""
    from torch_geometric.utils import to_dense_batch

    b, num_events = batch_vector(data)
    features, mask = to_dense_batch(data.x, b, batch_size=num_events)
    positions, _ = to_dense_batch(data.pos, b, batch_size=num_events)
    return features, positions, mask


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean over each event's valid nodes (0 for an event without any), in float32 at least
    (bf16 or fp16 ``h``: the sum in float32, as ``global_mean_pool`` of a float32 copy).

    Shapes:
        h: (B, N, C), mask: (B, N) -> (B, C)
    """
    if h.dtype == torch.bfloat16 or h.dtype == torch.float16:
        h = h.float()
    w = mask.to(h.dtype)[..., None]
    return (h * w).sum(1) / w.sum(1).clamp(min=1.0)
