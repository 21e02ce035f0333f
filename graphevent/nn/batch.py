"""What every model reads off a PyG batch: its batch vector, its events' keys, its nodes padded per event."""

from __future__ import annotations

import torch
from torch import Tensor

from graphevent.nn.layers.packing import index_counts


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


def padded_nodes(data, keep: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A PyG batch as padded events: ``(features (B, M, F), positions (B, M, 2), mask (B, M))``,
    ``M`` its largest event, nodes in their order, padding zeros: the input of the models'
    padded forms (``forward_padded``), which train and export with the same code. ``keep``
    ``(N,)`` bool: only those nodes, packed (e.g. the visible ones of masked pretraining:
    ``M`` is then the most an event keeps); ``tokens[mask]`` lists them in batch order."""
    from torch_geometric.utils import to_dense_batch

    b, num_events = batch_vector(data)
    x, pos = data.x, data.pos
    if keep is not None:
        rows = keep.nonzero().squeeze(1)  # one host sync for the three selections
        x, pos, b = x[rows], pos[rows], b[rows]
    features, mask = to_dense_batch(x, b, batch_size=num_events)
    positions, _ = to_dense_batch(pos, b, batch_size=num_events)
    return features, positions, mask


def stored_neighbours(data, k: int, data_k: int) -> tuple[Tensor, Tensor] | None:
    """The dataset's stored (eta, phi) graph as the padded neighbour slots of
    :func:`padded_nodes`' layout: ``(idx (B, M, k) event-local, valid (B, M, k))``, the same as
    :func:`~graphevent.nn.layers.dense_knn.dense_knn` finds (preprocessing's neighbours and
    order; tested), without its ``B x M x M`` distances (a whole event's 5,000 nodes). ``None``
    when the batch has no stored graph, one of another ``k`` (``data_k``: ``DatasetInfo.k``) or
    one not laid out node by node as the dataset writes it: the model then finds its own."""
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None or data_k != k or edge_index.numel() == 0:
        return None
    src, dst = edge_index[0], edge_index[1]
    b, num_events = batch_vector(data)
    n = b.numel()
    degree, counts = index_counts(dst, n), index_counts(b, num_events)
    node_major, most, widest = torch.stack([(dst[1:] >= dst[:-1]).all().long(), counts.max(), degree.max()]).tolist()
    if not node_major or widest > k:
        return None
    local = torch.arange(n, device=b.device) - (torch.cumsum(counts, 0) - counts)[b]  # node's place in its event
    slot = torch.arange(dst.numel(), device=b.device) - (torch.cumsum(degree, 0) - degree)[dst]
    idx = torch.zeros(num_events, most, k, dtype=torch.long, device=b.device)
    valid = torch.zeros(num_events, most, k, dtype=torch.bool, device=b.device)
    idx[b[dst], local[dst], slot] = local[src]
    valid[b[dst], local[dst], slot] = True
    return idx, valid


def zero_padding(features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``features`` and ``positions`` with zeros at padding: whatever a caller put there (NaN
    too) is then ignored by the padded forms.

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> the same shapes
    """
    return features.masked_fill(~mask[..., None], 0.0), positions.masked_fill(~mask[..., None], 0.0)


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
