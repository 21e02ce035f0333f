"""The ``edgeconv`` encoder: DGCNN-style EdgeConv blocks on the (eta, phi) graph, then in feature space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from graphevent.config.base import require_at_least_one
from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import masked_mean, padded_nodes, stored_neighbours, zero_padding
from graphevent.nn.layers.dense_knn import lattice
from graphevent.nn.layers.edge_conv_stack import EdgeConvStack
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.periodic import dense_event_frame
from graphevent.nn.precision import cast_parameters_once
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

    (Wang et al., "Dynamic Graph CNN", arXiv:1801.07829). Every kNN is per event, never
    across events (:func:`~graphevent.nn.layers.dense_knn.dense_knn`; the first in (eta, phi)
    gives the dataset's graph).

    One forward path, :meth:`forward_padded`, on padded events: training runs it on the
    batch padded (:meth:`forward`), export on the experiment's arrays.

    Args:
        info: dataset description.
        config: :class:`EdgeConvEncoderConfig` (or one deriving from it, such as ``edgeconv_ae``'s).

    Shapes:
        batch: x (N, F), pos (N, 2) -> tokens (N, dim), pooled (B, dim)
    """

    config_class = EdgeConvEncoderConfig

    def __init__(self, info: DatasetInfo, config: EdgeConvEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.k = config.k
        self.pixel_size, self.data_k = lattice(info), info.k
        self.dim = self.out_dim = config.dim
        self.pos_scale = config.pos_scale
        self.periods = info.periods  # absolute positions in each event's frame along a periodic axis
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.blocks = EdgeConvStack(info.num_node_features + 2, config.channels, config.k)
        fused = sum(ch[-1] for ch in config.channels)
        self.token = nn.Sequential(nn.Linear(fused, config.dim), nn.LayerNorm(config.dim), nn.GELU())
        self.latent = MLP(2 * config.dim, [config.dim], config.dim)

    @torch.jit.unused  # an exported model runs forward_padded
    def forward(self, batch) -> tuple[Tensor, Tensor]:
        features, positions, mask = padded_nodes(batch)
        neighbours = stored_neighbours(batch, self.k, self.data_k)
        # the blocks in the compute dtype, parameters cast once (BatchNorm's stay fp32); the
        # feature-space kNN measures distances in float64, the pooled mean and max in fp32
        with cast_parameters_once(self, features.device.type, keep=(nn.BatchNorm1d,)):
            tokens, pooled = self.forward_padded(features, positions, mask, neighbours)
        return tokens[mask], pooled

    def forward_padded(
        self, features: Tensor, positions: Tensor, mask: Tensor, neighbours: Optional[Tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, Tensor]:
        """Tokens ``(B, N, dim)`` and the pooled latent ``(B, dim)``; values at padding (NaN
        too) are ignored. ``neighbours``: the first block's, if known (the stored graph's
        slots); found from ``positions`` otherwise.

        Shapes:
            features: (B, N, F), positions: (B, N, 2), mask: (B, N) bool
        """
        features, positions = zero_padding(features, positions, mask)
        h = torch.cat([self.norm(features), dense_event_frame(positions, mask, self.periods) / self.pos_scale], dim=-1)
        outs = self.blocks(h.to(self.token[0].weight.dtype), positions, mask, self.pixel_size, self.periods, neighbours)
        tokens = self.token(torch.cat(outs, dim=-1))
        full = tokens.float() if tokens.dtype == torch.bfloat16 or tokens.dtype == torch.float16 else tokens
        top = full.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        top = torch.where(mask.any(dim=1)[:, None], top, torch.zeros_like(top))  # an event without nodes: 0
        return tokens, self.latent(torch.cat([masked_mean(full, mask), top], dim=-1).to(tokens.dtype))
