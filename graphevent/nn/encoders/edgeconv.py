"""The ``edgeconv`` encoder: DGCNN-style EdgeConv blocks on the (eta, phi) graph, then in feature space."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool, global_mean_pool

from graphevent.config.base import require_at_least_one
from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector, position_graph
from graphevent.nn.layers.edge_conv_stack import EdgeConvStack
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.precision import at_least_float32, cast_parameters_once
from graphevent.nn.registry import register_encoder


@dataclass(frozen=True)
class EdgeConvEncoderConfig:
    """Settings of the ``edgeconv`` encoder (``edgeconv_ae``'s config derives from it).

    Args:
        k: neighbours per node, in (eta, phi) for the first block and in feature space
            for the others.
        channels: edge-MLP sizes of each EdgeConv block, e.g. ``[[32, 32], [64, 64]]``:
            the first block runs on the (eta, phi) graph, later ones on kNN recomputed
            in feature space.
        dim: node token and latent size D.
        pos_scale: (eta, phi) are divided by this inside the model (default 0.4, a
            typical jet radius), so positions are of order one like the standardised values.
    """

    k: int = DEFAULT_K
    channels: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64))
    dim: int = 64
    pos_scale: float = 0.4

    def validate(self, where: str = "model") -> None:
        if not self.channels or any(not block or min(block) < 1 for block in self.channels):
            raise ConfigError(f"{where}.channels: {self.channels!r}; expected a non-empty list of non-empty lists of sizes >= 1")
        require_at_least_one(self, where, "k", "dim")
        if not self.pos_scale > 0:
            raise ConfigError(f"{where}.pos_scale: {self.pos_scale}; expected > 0")


@register_encoder("edgeconv")
class EdgeConvEncoder(nn.Module):
    r"""DGCNN-style encoder: EdgeConv blocks, per-node fusion, mean+max pooled latent.

    .. math::
        h^1 = \mathrm{EC}_1([\tilde{x}, p / s];\ \mathrm{kNN}_{\eta\phi}),\quad
        h^{l+1} = \mathrm{EC}_{l+1}(h^l;\ \mathrm{kNN}(h^l)),\quad
        t_i = \mathrm{GELU}(\mathrm{LN}(W[h^1_i, \dots, h^L_i])),\quad
        z = \mathrm{MLP}([\mathrm{mean}_i t_i, \max_i t_i])

    (Wang et al., "Dynamic Graph CNN", arXiv:1801.07829). Feature-space kNN is computed
    per event (:func:`graphevent.nn.layers.knn.knn_graph`), never across events.

    Args:
        info: dataset description.
        config: :class:`EdgeConvEncoderConfig` (or one deriving from it, such as ``edgeconv_ae``'s).

    Shapes:
        batch: x (N, F), pos (N, 2), edge_index (2, E) -> tokens (N, dim), pooled (B, dim)
    """

    config_class = EdgeConvEncoderConfig

    def __init__(self, info: DatasetInfo, config: EdgeConvEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.k = config.k
        self.data_k, self.pixel_size = info.k, info.pixel_size
        self.dim = self.out_dim = config.dim
        self.pos_scale = config.pos_scale
        self.periods = info.periods  # absolute positions in each event's frame along a periodic axis
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.blocks = EdgeConvStack(info.num_node_features + 2, config.channels, config.k)
        fused = sum(ch[-1] for ch in config.channels)
        self.token = nn.Sequential(nn.Linear(fused, config.dim), nn.LayerNorm(config.dim), nn.GELU())
        self.latent = MLP(2 * config.dim, [config.dim], config.dim)

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        b, num_events = batch_vector(batch)
        edge_index, _ = position_graph(batch, self.k, self.data_k, self.pixel_size, self.periods)
        return self.encode_graph(batch.x, batch.pos, edge_index, b, num_events)

    def encode_graph(self, x: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor, num_events: int) -> tuple[Tensor, Tensor]:
        """Tokens ``(N, dim)`` and pooled latent ``(B, dim)`` of nodes ``x`` on the (eta, phi) graph ``edge_index``."""
        h = torch.cat([self.norm(x), event_frame(pos, batch, num_events, self.periods) / self.pos_scale], dim=-1)
        # the blocks in the compute dtype, parameters cast once (BatchNorm's stay fp32); the
        # feature-space kNN measures distances in fp32, the pooled means are taken in fp32
        with cast_parameters_once(self, x.device.type, keep=(nn.BatchNorm1d,)) as dtype:
            h = h.to(dtype)
            outs = self.blocks(h, edge_index, batch, num_events)
            tokens = self.token(torch.cat(outs, dim=-1))
            full = at_least_float32(tokens)
            pooled = torch.cat([global_mean_pool(full, batch, num_events), global_max_pool(full, batch, num_events)], -1)
            return tokens, self.latent(pooled.to(dtype))
