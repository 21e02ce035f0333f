"""FoldingNet autoencoder: any registered encoder, a 2D grid folded into the event's points, Chamfer loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.set_loss import chamfer_distance, nearest_value_error, point_set
from graphevent.nn.models.base import AutoencoderModel, OneEncoderConfig
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import build_encoder, register_model


@dataclass(frozen=True)
class FoldingNetConfig(OneEncoderConfig):
    """Keyword arguments of ``foldingnet_ae``: the encoder and its section
    (:class:`~graphevent.nn.models.base.OneEncoderConfig`), and:

    Args:
        grid: the fixed 2D grid has ``grid x grid`` points in ``[-1, 1]^2``: the number of
            points every event is folded into (the paper's 45 x 45 is for 2,048-point shapes;
            jets have tens to a few hundred nodes).
        hidden: width of the two folding MLPs (two hidden layers each).
        pos_scale: (eta, phi) are divided by this inside the model (default 0.4, a typical
            jet radius), so positions are of order one like the standardised values.
        pos_weight: weight of the scaled (eta, phi) relative to the standardised values in the
            Chamfer distance.
    """

    grid: int = 16
    hidden: int = 128
    pos_scale: float = 0.4
    pos_weight: float = 1.0

    def validate(self, where: str = "model") -> None:
        if self.grid < 2:
            raise ConfigError(f"{where}.grid: {self.grid}; expected >= 2 (points per side of the folded grid)")
        require_at_least_one(self, where, "hidden")
        if not (self.pos_scale > 0 and self.pos_weight > 0):
            raise ConfigError(f"{where}: pos_scale and pos_weight must be > 0 (found {self.pos_scale}, {self.pos_weight})")


class FoldingDecoder(nn.Module):
    r"""FoldingNet's decoder (Yang et al., arXiv:1712.07262): two foldings of a fixed 2D grid,
    each conditioned on the event embedding.

    .. math::
        y^1_m = \mathrm{MLP}_1([z, u_m]),\qquad y_m = \mathrm{MLP}_2([z, y^1_m])

    ``u_m`` are the ``grid x grid`` points of a regular grid in ``[-1, 1]^2``; the first folding
    bends the grid into the event's space, the second refines it.

    Args:
        latent_dim: size of the embedding ``z``.
        out_channels: size of each output point (``2 + F``: (eta, phi) and the channel values).
        grid: points per side of the grid.
        hidden: width of each folding MLP.

    Shapes:
        z: (B, latent_dim) -> points (B, grid**2, out_channels)
    """

    def __init__(self, latent_dim: int, out_channels: int, grid: int, hidden: int = 128) -> None:
        super().__init__()
        self.grid_size = grid
        side = torch.linspace(-1.0, 1.0, grid)
        self.register_buffer("grid", torch.cartesian_prod(side, side), persistent=False)  # (M, 2)
        self.fold1 = MLP(latent_dim + 2, [hidden, hidden], out_channels)
        self.fold2 = MLP(latent_dim + out_channels, [hidden, hidden], out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fold1.reset_parameters()
        self.fold2.reset_parameters()

    def forward(self, z: Tensor) -> Tensor:
        b, m = z.size(0), self.grid.size(0)
        code = z[:, None, :].expand(b, m, z.size(1))
        first = self.fold1(torch.cat([code, self.grid.to(z.dtype).expand(b, m, 2)], dim=-1))
        return self.fold2(torch.cat([code, first], dim=-1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(grid={self.grid_size}x{self.grid_size})"


@register_model("foldingnet_ae")
class FoldingNetAutoencoder(AutoencoderModel):
    r"""FoldingNet autoencoder around any registered encoder: fold a fixed grid into the event.

    The encoder (``encoder``, any registered encoder by name) gives the pooled embedding
    ``z``; :class:`FoldingDecoder` folds a ``grid x grid`` grid, conditioned on ``z``, into
    points ``((eta, phi) / pos_scale, standardised values)``. The loss is the Chamfer distance
    (:func:`~graphevent.nn.layers.set_loss.chamfer_distance`) between the event's nodes and
    all folded points, in ``(sqrt(pos_weight) * (eta, phi) / pos_scale, standardised values)``
    space (Yang et al., "FoldingNet: Point Cloud Auto-encoder via Deep Grid Deformation",
    arXiv:1712.07262). Unlike ``edgeconv_ae``'s set decoder, the number of points is fixed
    and no count is predicted: every folded point must lie near a node, every node near a point.

    Shapes:
        batch: PyG Batch with x (N, F), pos (N, 2) -> encode: (N, D), (B, D);
        decode: (B, grid**2, 2 + F); predict: ``{"recon_error": (B, F)}``.
    """

    config_class = FoldingNetConfig
    recon_error_label = "Chamfer: each node vs its nearest folded point"

    def __init__(self, info: DatasetInfo, config: FoldingNetConfig | None = None) -> None:
        super().__init__(info, config or FoldingNetConfig())
        c = self.config
        self.encoder = build_encoder(c.encoder, info, c.encoder_configs.get(c.encoder))
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.decoder = FoldingDecoder(self.encoder.out_dim, 2 + info.num_node_features, c.grid, c.hidden)

    def decode(self, tokens: Tensor | None, pooled: Tensor, batch=None) -> Tensor:
        """Folded points ``(B, grid**2, 2 + F)`` ((eta, phi) / pos_scale, standardised values),
        from the pooled embedding alone (``tokens`` and ``batch`` are unused)."""
        return self.decoder(pooled)

    def match(self, batch, target: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The per-event Chamfer distance ``(B,)``, the folded points ``(B, M, 2 + F)``, each
        node's nearest folded point ``(B, S)`` and the nodes as padded points ``(B, S, 2 + F)``
        with their mask ``(B, S)`` (``target`` replaces ``batch.x``)."""
        b, num_events = batch_vector(batch)
        points = self.decode(*self.encode(batch), batch)
        values = self.norm(batch.x if target is None else target)
        pos = event_frame(batch.pos, b, num_events, self.info.periods) / self.config.pos_scale  # periodic axes: the event's frame
        true, true_mask = point_set(pos, values, b, num_events, self.config.pos_weight)
        w = self.config.pos_weight ** 0.5
        pred = torch.cat([w * points[..., :2], points[..., 2:]], dim=-1)
        pred_mask = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
        cd, nearest, _ = chamfer_distance(pred, pred_mask, true, true_mask)
        return cd, points, nearest, true, true_mask

    def recon_loss(self, batch, target: Tensor | None = None) -> Tensor:
        """The batch mean of the Chamfer distance (see class docstring); ``target`` replaces ``batch.x``."""
        return self.match(batch, target)[0].mean()

    @torch.no_grad()
    def reconstruct(self, batch) -> Reconstruction:
        """For every node, the folded point nearest to it (dataset units): as many points as the
        event has nodes, where the fold put them."""
        _, points, nearest, _, true_mask = self.match(batch)
        picked = torch.gather(points.float(), 1, nearest[..., None].expand(-1, -1, points.size(-1)))[true_mask]
        event = torch.arange(true_mask.size(0), device=true_mask.device)[:, None].expand_as(true_mask)[true_mask]
        pos = picked[:, :2] * self.config.pos_scale
        return Reconstruction(pos, self.norm.inverse(picked[:, 2:]), event, true_mask.size(0))

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``recon_error (B, F)``: per event and channel, mean squared standardised error between
        each node and its nearest folded point."""
        _, points, nearest, true, true_mask = self.match(batch)
        return {"recon_error": nearest_value_error(points[..., 2:], nearest, true[..., 2:], true_mask)}
