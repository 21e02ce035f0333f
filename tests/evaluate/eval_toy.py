"""A small model with the GraphModel evaluation interface, and synthetic events, for unit tests."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter, softmax


class ToyEvalModel(nn.Module):
    """Mean-pooled node features -> class probabilities, a regression and a reconstruction error.

    ``predict`` is decorated with ``no_grad`` like the real models; explain() returns a
    softmax over each event's nodes of a learned node score as "attention".
    """

    supports_pretrain = True
    supports_tasks = True

    def __init__(self, num_features: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.node = nn.Linear(num_features, 8)
        self.cls = nn.Linear(8, num_classes)
        self.reg = nn.Linear(8, 1)
        self.dec = nn.Linear(8, num_features)
        self.att = nn.Linear(8, 1)

    def encode(self, batch):
        h = torch.tanh(self.node(batch.x))
        return h, scatter(h, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")

    @torch.no_grad()
    def predict(self, batch):
        _, pooled = self.encode(batch)
        mean_x = scatter(batch.x, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")
        return {
            "label": self.cls(pooled).softmax(-1),
            "m0": 50.0 + 10.0 * self.reg(pooled).squeeze(-1),
            "recon_error": (self.dec(pooled) - mean_x) ** 2,
        }

    def loss(self, batch, stage):
        _, pooled = self.encode(batch)
        mean_x = scatter(batch.x, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")
        loss = ((self.dec(pooled) - mean_x) ** 2).mean()
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def explain(self, batch):
        h, pooled = self.encode(batch)
        w = softmax(self.att(h).squeeze(-1), batch.batch)
        return {"attention": {"label": w[:, None]}, "pooled": pooled}


def toy_events(n: int = 40, seed: int = 0, num_features: int = 3) -> list[Data]:
    """Events with 4..15 nodes; class 1 has larger feature values; target ~ 50 + class shift."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        m = int(torch.randint(4, 16, (1,), generator=g))
        y = i % 2
        x = torch.rand(m, num_features, generator=g) + 0.5 * y
        pos = 0.2 * (torch.rand(m, 2, generator=g) - 0.5)
        out.append(Data(x=x, pos=pos, y=torch.tensor([y]),
                        targets=torch.tensor([[45.0 + 10 * y + float(torch.rand(1, generator=g)), 100.0]]),
                        event_id=torch.tensor([7 * i + 3])))
    return out


#: the ``model:`` line of a tiny run of every exportable model (the export tests train them;
#: a model added to the export registry without one fails there)
TINY_EXPORTABLE = {
    "particlenet": "model: {name: particlenet, k: 8, channels: [[16, 16], [16]], fc_dim: 16}",
    "multitask": "model: {name: multitask, encoders: [masked_gt, edgeconv], dim: 16, heads: 2, head_hidden: 16, "
                 "masked_gt: {dim: 16, depth: 2, heads: 2, edge_dim: 8, k: 8, global_every: 2}, "
                 "edgeconv: {k: 8, channels: [[16, 16], [16]], dim: 16}}",
    "resnet15": "model: {name: resnet15, fmaps: [4, 8], nblocks: 1}",
}
