"""Tiny events and tiny model configs for the model tests (generated, never committed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from graphevent.data.info import DatasetInfo
from graphevent.nn.layers.knn import edge_features, knn_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))

K = 8
SIZES = (10, 25, 40)
#: tiny settings of every registered encoder (its own config_class's keys; tests/nn/test_encoders.py
#: checks it covers the registry), and of the encoders with their decoders (their autoencoders' keys)
TINY_ENCODERS = {
    "masked_gt": {"dim": 16, "depth": 2, "heads": 2, "edge_dim": 8, "k": K, "pos_freqs": 2, "global_every": 2},
    "edgeconv": {"k": K, "channels": [[8, 8], [16, 16]], "dim": 16},
    "sparse_conv": {"channels": [8, 12, 16], "blocks": 1, "dim": 16},
}
GT = {**TINY_ENCODERS["masked_gt"], "decoder_dim": 8}
EC = {**TINY_ENCODERS["edgeconv"], "num_points": 48, "query_dim": 8, "decoder_hidden": 32}
SC = {**TINY_ENCODERS["sparse_conv"], "bottleneck": 4}
#: tiny settings of every registered model (tests/nn/test_models.py checks it covers the registry)
TINY = {
    "masked_gt_ae": GT,
    "edgeconv_ae": EC,
    "sparse_conv_ae": SC,
    "particlenet": {"k": K, "channels": [[8, 8], [16, 16], [16, 16]], "fc_dim": 16, "dropout": 0.0},
    "resnet15": {"fmaps": [4, 8], "nblocks": 1},
    "multitask": {"dim": 16, "heads": 2, "head_hidden": 16, "masked_gt": GT, "edgeconv": EC, "sparse_conv": SC},
    "contrastive": {"encoder": "masked_gt", "proj_hidden": 16, "proj_dim": 8, "masked_gt": GT},
    "masked_gt_latent": {"masked_gt": GT},
    "masked_gt_occupancy": {"grid": 4, "masked_gt": GT},
    "foldingnet_ae": {"encoder": "masked_gt", "grid": 6, "hidden": 16, "masked_gt": GT},
}


def tiny_info() -> DatasetInfo:
    return DatasetInfo(
        node_features=["tracks", "ecal", "hcal"],
        classes=["quark", "gluon"],
        targets=["m0", "pt"],
        target_stats={"m0": {"mean": 50.0, "std": 10.0}, "pt": {"mean": 200.0, "std": 30.0}},
        feature_stats={f: {"mean": 0.5, "std": 0.6} for f in ("tracks", "ecal", "hcal")},
        k=K,
        pixel_size=(0.1, 0.1),
        image_shape=(3, 21, 21),
        feature_transforms=["log1p"] * 3,
        feature_signed=[False] * 3,
    )


def make_event(n: int, seed: int, event_id: int = 0, label: int | None = None) -> Data:
    """One event: n nodes at continuous (eta, phi) in [-0.5, 0.5]^2 (no distance ties), kNN graph."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g) - 0.5
    x = torch.log1p(torch.rand(n, 3, generator=g) * 3)
    ei = knn_graph(pos, None, K)
    label = seed % 2 if label is None else label
    targets = torch.tensor([[50.0 + 10 * torch.randn(1, generator=g).item(), 200.0 + 30 * torch.randn(1, generator=g).item()]])
    return Data(x=x, pos=pos, edge_index=ei, edge_attr=edge_features(pos, ei), y=torch.tensor([label]),
                targets=targets, event_id=torch.tensor([event_id]))


def make_jet_event(n: int, seed: int, event_id: int = 0, k: int = K, pixel: float = 0.0174) -> Data:
    """A jet-image-like event: n distinct pixels of a 125 x 125 lattice around the centre.

    Unlike :func:`make_event`, positions sit on a grid, so many neighbours are at exactly
    the same distance (as in real images); the kNN graph is built the way preprocessing
    builds it (:func:`graphevent.data.knn.knn_chunk`).
    """
    from graphevent.data.knn import edge_features_np, knn_chunk, neighbours_to_edge_index

    g = torch.Generator().manual_seed(seed)
    width = 3.0 + 6.0 * torch.rand(1, generator=g).item()
    cells: dict[tuple[int, int], None] = {}
    while len(cells) < n:
        r, c = (62 + width * torch.randn(2, generator=g)).round().clamp(0, 124).long().tolist()
        cells[(r, c)] = None
    pos = ((torch.tensor(list(cells)) - 62) * pixel).float()
    x = torch.log1p(torch.rand(n, 3, generator=g) * 10 * (torch.rand(n, 3, generator=g) < 0.6))
    ei = neighbours_to_edge_index(knn_chunk(pos.numpy(), np.array([n]), k))
    return Data(x=x, pos=pos, edge_index=torch.from_numpy(ei).long(),
                edge_attr=torch.from_numpy(edge_features_np(pos.numpy(), ei)), y=torch.tensor([seed % 2]),
                targets=torch.tensor([[50.0, 200.0]]), event_id=torch.tensor([event_id]))


def make_events(sizes=SIZES, seed: int = 0) -> list[Data]:
    return [make_event(n, seed + i, event_id=100 + i) for i, n in enumerate(sizes)]


def make_batch(sizes=SIZES, seed: int = 0) -> Batch:
    return Batch.from_data_list(make_events(sizes, seed))


def permute_event(data: Data, perm: torch.Tensor) -> Data:
    """The same event with its nodes reordered: node ``i`` of the result is node ``perm[i]``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    out = data.clone()
    out.x, out.pos = data.x[perm], data.pos[perm]
    out.edge_index = inv[data.edge_index]
    return out


def build_tiny(name: str, tasks=None, **overrides):
    from graphevent.nn import build_model

    torch.manual_seed(0)
    return build_model({"name": name, **TINY[name], **overrides}, tiny_info(), tasks)


def natural_stage(model) -> str:
    return "pretrain" if model.supports_pretrain else "finetune"


