"""A tiny registered GraphModel and synthetic events for training tests.

The loss is a mean over *events* (not nodes), there is no dropout, batch norm or random
masking, so one process with batch B and two DDP processes with batch B/2 must reach the
same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from graphevent.data.info import DatasetInfo
from graphevent.nn.models.base import GraphModel
from graphevent.nn.registry import _REGISTRY, register_model

INFO = DatasetInfo(node_features=["a", "b", "c"], classes=["quark", "gluon"], targets=["m0"],
                   target_stats={"m0": {"mean": 0.0, "std": 1.0}})


@dataclass(frozen=True)
class ToyConfig:
    hidden: int = 8
    dropout: float = 0.0


class ToyModel(GraphModel):
    """Node MLP -> mean pool -> linear head (tasks) or linear decoder of the mean features (pretrain)."""

    config_class = ToyConfig
    supports_pretrain = True
    supports_tasks = True

    def __init__(self, info: DatasetInfo, config: ToyConfig, tasks=None) -> None:
        super().__init__(info, config)
        self.tasks = list(tasks or [])
        self.encoder = nn.Sequential(nn.Linear(info.num_node_features, config.hidden), nn.Tanh(), nn.Dropout(config.dropout))
        self.head = nn.Linear(config.hidden, info.num_classes)
        self.decoder = nn.Linear(config.hidden, info.num_node_features)

    def encode(self, batch):
        nodes = self.encoder(batch.x)
        return nodes, scatter(nodes, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")

    def loss(self, batch, stage):
        _, pooled = self.encode(batch)
        if stage == "pretrain":
            mean_x = scatter(batch.x, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")
            per_event = ((self.decoder(pooled) - mean_x) ** 2).mean(dim=1)
            loss = per_event.mean()
            return loss, {"recon": float(loss.detach())}
        loss = F.cross_entropy(self.head(pooled), batch.y.view(-1))
        return loss, {"loss_label": float(loss.detach())}

    def predict(self, batch):
        _, pooled = self.encode(batch)
        return {t.name: self.head(pooled).softmax(-1) for t in self.tasks if t.type == "classification"}

    def encoder_modules(self):
        return {"toy": self.encoder}


if "toy_train" not in _REGISTRY:
    register_model("toy_train")(ToyModel)


def toy_events(n: int = 24, seed: int = 0, dtype: torch.dtype = torch.float32) -> list[Data]:
    """``n`` events with 3..12 nodes, 3 features, labels correlated with the features."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        m = int(torch.randint(3, 13, (1,), generator=g))
        y = i % 2
        x = torch.randn(m, 3, generator=g, dtype=dtype) + (0.7 if y else -0.7)
        out.append(Data(x=x, pos=torch.randn(m, 2, generator=g), y=torch.tensor([y]),
                        targets=torch.randn(1, 1, generator=g), event_id=torch.tensor([1000 + i])))
    return out
