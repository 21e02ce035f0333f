"""ParticleNet-style supervised baseline (three EdgeConv blocks, global average pooling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import masked_mean, padded_nodes, stored_neighbours, zero_padding
from graphevent.nn.layers.dense_knn import lattice
from graphevent.nn.layers.edge_conv_stack import EdgeConvStack
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.periodic import dense_event_frame
from graphevent.nn.models.base import SupervisedModel
from graphevent.nn.precision import cast_parameters_once
from graphevent.nn.registry import register_model
from graphevent.nn.tasks import TaskConfig, TaskSet, check_tasks, default_tasks


@dataclass(frozen=True)
class ParticleNetConfig:
    """Keyword arguments of ``particlenet`` (defaults: the paper's ParticleNet).

    Args:
        k: neighbours per node (first block in (eta, phi), later ones in feature space).
        channels: edge-MLP sizes per EdgeConv block.
        fc_dim: width of each task's fully connected layer.
        dropout: dropout before each task's output layer.
        pos_scale: (eta, phi) input features are divided by this (default 0.4, a typical
            jet radius); neighbour search does not depend on it.
    """

    k: int = DEFAULT_K
    channels: tuple[tuple[int, ...], ...] = ((64, 64, 64), (128, 128, 128), (256, 256, 256))
    fc_dim: int = 256
    dropout: float = 0.1
    pos_scale: float = 0.4

    def validate(self, where: str = "model") -> None:
        if not self.channels or any(not block or min(block) < 1 for block in self.channels):
            raise ConfigError(f"{where}.channels: {self.channels!r}; expected a non-empty list of non-empty lists of sizes >= 1")
        if self.k < 1 or self.fc_dim < 1:
            raise ConfigError(f"{where}: k and fc_dim must be >= 1 (found k={self.k}, fc_dim={self.fc_dim})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout: {self.dropout}; expected a value in [0, 1)")
        if not self.pos_scale > 0:
            raise ConfigError(f"{where}.pos_scale: {self.pos_scale}; expected > 0")


@register_model("particlenet")
class ParticleNet(SupervisedModel):
    r"""ParticleNet-style baseline: EdgeConv blocks with dynamic kNN, global average pooling, task heads.

    Qu & Gouskos, "ParticleNet: Jet Tagging via Particle Clouds", arXiv:1902.08570: three
    EdgeConv blocks with k = 16 and edge-MLP channels (64, 64, 64), (128, 128, 128),
    (256, 256, 256); the first block's neighbours are found in (eta, phi), the others in
    the feature space of the previous block; the last block's output is averaged over the
    nodes and fed to ``Linear(256) -> ReLU -> Dropout(0.1) -> Linear(out)``. Here each task
    gets its own such head (one classification task is the paper's network). Inputs are
    the standardised node values and (eta, phi) / ``pos_scale``.

    Args:
        info: dataset description.
        config: :class:`ParticleNetConfig`.
        tasks: task list (default: classification of the label).

    One forward path, :meth:`forward_padded`, on padded events: training runs it on the
    batch padded (:meth:`forward_features`), export on the experiment's arrays. The first
    block's neighbours are recomputed from the positions (:func:`dense_knn`: the dataset's
    graph, equidistant neighbours in node order as preprocessing).

    Shapes:
        batch: x (N, F), pos (N, 2) -> forward_features: (N, C), (B, C);
        forward_heads: ``{task: (B, num_classes) logits | (B,) standardised value}``
    """

    config_class = ParticleNetConfig
    supports_pretrain = False
    supports_tasks = True

    def __init__(self, info: DatasetInfo, config: ParticleNetConfig | None = None, tasks: Sequence[TaskConfig] | None = None) -> None:
        super().__init__(info, config or ParticleNetConfig())
        c = self.config
        self.taskset = TaskSet(check_tasks(tasks if tasks is not None else default_tasks(info, regression=False), info), info)
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.blocks = EdgeConvStack(info.num_node_features + 2, c.channels, c.k)
        size = self.dim = self.blocks.out_channels
        # geometry as plain attributes: forward_padded compiles with TorchScript
        self.k, self.pos_scale = int(c.k), float(c.pos_scale)
        self.pixel_size, self.periods = lattice(info), info.periods
        self.heads = nn.ModuleDict(
            {
                t.name: nn.Sequential(
                    nn.Linear(size, c.fc_dim), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.fc_dim, self.taskset.out_channels(t))
                )
                for t in self.taskset.tasks
            }
        )

    @property
    def tasks(self) -> list[TaskConfig]:
        return self.taskset.tasks

    def forward_features(self, batch) -> tuple[Tensor, Tensor]:
        """Last block's node features ``(N, C)`` and their per-event mean ``(B, C)``."""
        features, positions, mask = padded_nodes(batch)
        neighbours = stored_neighbours(batch, self.k, self.info.k)
        # the blocks in the compute dtype, parameters cast once (BatchNorm's stay fp32; kNN and means in fp32)
        with cast_parameters_once(self.blocks, features.device.type, keep=(nn.BatchNorm1d,)):
            tokens, pooled = self.forward_padded(features, positions, mask, neighbours)
        return tokens[mask], pooled

    def forward_padded(
        self, features: Tensor, positions: Tensor, mask: Tensor, neighbours: Optional[Tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, Tensor]:
        """Last block's node features ``(B, N, C)`` and their mean over each event's valid
        nodes ``(B, C)``; values at padding (NaN too) are ignored. ``neighbours``: the first
        block's, if known (the stored graph's slots); found from ``positions`` otherwise.

        Shapes:
            features: (B, N, F), positions: (B, N, 2), mask: (B, N) bool
        """
        features, positions = zero_padding(features, positions, mask)
        h = torch.cat([self.norm(features), dense_event_frame(positions, mask, self.periods) / self.pos_scale], dim=-1)
        h = self.blocks(h.to(self.blocks[0].lin_i.weight.dtype), positions, mask, self.pixel_size, self.periods, neighbours)[-1]
        return h, masked_mean(h, mask)
