"""Masked occupancy prediction: hidden nodes' positions and number unknown, predict where they were."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, to_dense_batch

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.encoders.masked_gt import POS_RANGE
from graphevent.nn.layers.cross_attention import MultiHeadAttention
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.models.base import Backbone, BackbonePretrainer, Stage
from graphevent.nn.models.masked_gt_ae import MaskedGTConfig, mask_nodes
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class MaskedOccupancyConfig:
    """Keyword arguments of ``masked_gt_occupancy``.

    Args:
        grid: cells per side of the (eta, phi) grid whose occupancy is predicted.
        extent: the grid covers ``[-extent, extent]^2`` in the dataset's (eta, phi) units;
            nodes outside count in the edge cells.
        masked_gt: the ``masked_gt`` encoder's settings; its ``mask_*`` fields choose the hidden
            nodes and ``decoder_dim`` / ``decoder_depth`` size the grid decoder.
    """

    grid: int = 8
    extent: float = 1.1
    masked_gt: MaskedGTConfig = field(default_factory=MaskedGTConfig)

    def validate(self, where: str = "model") -> None:
        require_at_least_one(self, where, "grid")
        if not self.extent > 0:
            raise ConfigError(f"{where}.extent: {self.extent}; expected > 0")


class GridQueryDecoder(nn.Module):
    r"""Queries at fixed grid cells attend over an event's visible tokens; one output row per cell.

    .. math::
        k_j = W t_j + \mathrm{MLP}(\gamma(p_j)),\quad q^0_c = \mathrm{MLP}(\gamma(c)),\quad
        q^{l+1} = q' + \mathrm{FFN}(\mathrm{LN}(q')),\ q' = q^l + \mathrm{Attn}(\mathrm{LN}(q^l), \mathrm{LN}(k))

    ``c`` are the cell centres, ``p_j`` the visible nodes' positions (divided by ``pos_scale``).
    Nothing about the hidden nodes enters.

    Args:
        dim: encoder token size.
        decoder_dim: decoder token size (divisible by ``heads``).
        heads: attention heads.
        depth: cross-attention blocks.
        pos_freqs: Fourier octaves of the position encoding.
        out_channels: outputs per cell.

    Shapes:
        tokens: (N_visible, dim), pos: (N_visible, 2) already divided by pos_scale,
        batch: (N_visible,), cells: (C, 2) divided by pos_scale -> (B, C, out_channels)
    """

    def __init__(self, dim: int, decoder_dim: int, heads: int, depth: int, pos_freqs: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, decoder_dim)
        self.pos_enc = FourierPosition(2, pos_freqs, scale=POS_RANGE)
        self.key_pos = MLP(self.pos_enc.out_channels, [decoder_dim], decoder_dim)
        self.query_pos = MLP(self.pos_enc.out_channels, [decoder_dim], decoder_dim)
        self.norm_kv = nn.LayerNorm(decoder_dim)
        self.norms1 = nn.ModuleList(nn.LayerNorm(decoder_dim) for _ in range(depth))
        self.attns = nn.ModuleList(MultiHeadAttention(decoder_dim, heads) for _ in range(depth))
        self.norms2 = nn.ModuleList(nn.LayerNorm(decoder_dim) for _ in range(depth))
        self.ffns = nn.ModuleList(MLP(decoder_dim, [2 * decoder_dim], decoder_dim) for _ in range(depth))
        self.out_norm = nn.LayerNorm(decoder_dim)
        self.head = nn.Linear(decoder_dim, out_channels)

    def forward(self, tokens: Tensor, pos: Tensor, batch: Tensor, num_events: int, cells: Tensor) -> Tensor:
        keys = self.proj(tokens.float()) + self.key_pos(self.pos_enc(pos))
        keys, mask = to_dense_batch(keys, batch, batch_size=num_events)  # (B, M, d), (B, M)
        keys = self.norm_kv(keys)
        q = self.query_pos(self.pos_enc(cells)).unsqueeze(0).expand(num_events, -1, -1)
        allowed = mask[:, None, :]
        for norm1, attn, norm2, ffn in zip(self.norms1, self.attns, self.norms2, self.ffns):
            q = q + attn(norm1(q), keys, allowed)[0]
            q = q + ffn(norm2(q))
        return self.head(self.out_norm(q))


@register_model("masked_gt_occupancy")
class MaskedOccupancyPretrainer(BackbonePretrainer):
    r"""Masked pretraining of the ``masked_gt`` encoder with a target that cannot be solved locally.

    As in ``masked_gt_ae``, a fraction of each event's nodes is hidden (random nodes or
    contiguous patches) and the encoder sees only the visible ones; but the decoder is not told
    where the hidden nodes were, nor how many there were. Fixed queries at the cells of a
    ``grid x grid`` lattice over the jet (:class:`GridQueryDecoder`) attend over the visible
    tokens and predict, per cell, the occupancy and the per-channel content of the hidden
    nodes: ``log1p(count)`` and ``log1p(sum of each channel's values)`` (dataset units). Mean
    squared error over all cells (empty cells have target 0). Labels are never read. Fine-tune
    with ``multitask`` and ``--init-from`` (the encoder keeps its name ``masked_gt``).

    Shapes:
        batch: x (N, F), pos (N, 2) -> encode: (N, dim), (B, dim); loss: scalar;
        predict: ``{"embedding": (B, dim)}``
    """

    config_class = MaskedOccupancyConfig

    def __init__(self, info: DatasetInfo, config: MaskedOccupancyConfig | None = None) -> None:
        super().__init__(info, config or MaskedOccupancyConfig())
        c = self.config.masked_gt
        self.backbone = Backbone(info, "masked_gt", c)
        self.decoder = GridQueryDecoder(c.dim, c.decoder_dim, c.heads, c.decoder_depth, c.pos_freqs,
                                        1 + info.num_node_features)

    def mask_nodes(self, batch, generator: torch.Generator | None = None) -> Tensor:
        """Boolean ``(N,)``: which nodes to hide (:func:`~graphevent.nn.models.masked_gt_ae.mask_nodes`)."""
        return mask_nodes(batch, self.config.masked_gt, self.training, generator, self.info.periods)

    def cell_index(self, pos: Tensor) -> Tensor:
        """The grid cell ``(N,)`` of each position (row-major over (eta, phi); outside -> edge cells)."""
        g, e = self.config.grid, self.config.extent
        ij = ((pos.float() + e) / (2 * e) * g).floor().long().clamp(0, g - 1)
        return ij[:, 0] * g + ij[:, 1]

    def cell_centres(self, device: torch.device) -> Tensor:
        """``(grid**2, 2)`` cell centres in the dataset's (eta, phi) units, in :meth:`cell_index` order."""
        g, e = self.config.grid, self.config.extent
        c = (torch.arange(g, device=device, dtype=torch.float32) + 0.5) / g * 2 * e - e
        return torch.cartesian_prod(c, c)

    def occupancy_targets(self, batch, hidden: Tensor) -> Tensor:
        """``(B, grid**2, 1 + F)``: per cell, ``log1p`` of the hidden nodes' count and channel sums."""
        b, num_events = batch_vector(batch)
        cells = self.config.grid ** 2
        rows = torch.cat([torch.ones_like(batch.x[:, :1]), batch.x], dim=1).float()[hidden]
        index = (b * cells + self.cell_index(self.visible_frame(batch, hidden)))[hidden]
        sums = scatter(rows, index, dim=0, dim_size=num_events * cells, reduce="sum")
        return torch.log1p(sums.clamp(min=0)).view(num_events, cells, -1)

    def occupancy_loss(self, batch, hidden: Tensor | None = None) -> Tensor:
        """Mean squared error of the predicted cell occupancies and contents (all cells).

        Args:
            batch: the events.
            hidden: (N,) bool mask to use (default: the ``masked_gt`` masking).
        """
        hidden = self.mask_nodes(batch) if hidden is None else hidden
        pred = self.predict_cells(batch, hidden)
        return (pred.float() - self.occupancy_targets(batch, hidden)).square().mean()

    def predict_cells(self, batch, hidden: Tensor) -> Tensor:
        """``(B, grid**2, 1 + F)`` predicted from the visible nodes only."""
        tokens, _ = self.backbone.encode(batch, visible=~hidden)
        b, num_events = batch_vector(batch)
        keep = (~hidden).nonzero().view(-1)
        scale = self.config.masked_gt.pos_scale
        cells = self.cell_centres(batch.pos.device) / scale
        return self.decoder(tokens, self.visible_frame(batch, hidden)[keep].float() / scale, b[keep], num_events, cells)

    def visible_frame(self, batch, hidden: Tensor) -> Tensor:
        """``(N, 2)`` positions, along a periodic axis (``DatasetInfo.periods``) measured from the
        circular mean of each event's visible nodes (the frame the encoder sees); as stored otherwise."""
        if self.info.periods is None:
            return batch.pos
        b, num_events = batch_vector(batch)
        keep = ~hidden
        return event_frame(batch.pos, b, num_events, self.info.periods, of=(batch.pos[keep], b[keep]))

    def loss(self, batch, stage: Stage = "pretrain") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        loss = self.occupancy_loss(batch)
        return loss, {"occupancy": float(loss.detach())}
