"""Sparse EdgeConv autoencoder: DGCNN-style encoder, latent vector, set decoder scored by Chamfer distance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.encoders.edgeconv import EdgeConvEncoder, EdgeConvEncoderConfig
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.set_loss import chamfer_distance, nearest_value_error, point_set
from graphevent.nn.models.base import AutoencoderModel
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class EdgeConvAEConfig(EdgeConvEncoderConfig):
    """Keyword arguments of ``edgeconv_ae``: the ``edgeconv`` encoder's
    (:class:`~graphevent.nn.encoders.edgeconv.EdgeConvEncoderConfig`) and the decoder's and
    loss's. It is also the ``edgeconv`` section of the models that compose the encoder.

    Args:
        num_points: decoder slots: the most points reconstructed per event.
        query_dim: size of each slot's learned query.
        decoder_hidden: decoder MLP width.
        pos_weight: weight of the scaled (eta, phi) relative to the standardised values in
            the Chamfer distance.
        count_weight: weight of the occupied-pixel count loss.
    """

    num_points: int = 320
    query_dim: int = 32
    decoder_hidden: int = 128
    pos_weight: float = 1.0
    count_weight: float = 0.1

    def validate(self, where: str = "model") -> None:
        super().validate(where)
        require_at_least_one(self, where, "num_points", "query_dim", "decoder_hidden")
        if self.pos_weight <= 0 or self.count_weight < 0:
            raise ConfigError(f"{where}: pos_weight must be > 0 and count_weight >= 0 (found {self.pos_weight}, {self.count_weight})")


class SetDecoder(nn.Module):
    r"""Latent vector -> a set of ``num_points`` points ``(eta, phi, values)`` and a point count.

    Each of ``M`` slots has a learned query :math:`q_m`; point
    :math:`m = \mathrm{MLP}(\mathrm{GELU}(W_z z + W_q q_m))`; the count head predicts
    :math:`\log(1 + n)`, the number of occupied pixels. Reconstructing an event keeps the
    first ``n`` slots (training uses the true ``n``, sampling the predicted one).

    Args:
        latent_dim: size of ``z``.
        num_features: values per point ``F``.
        num_points: slots ``M``.
        query_dim: size of each query.
        hidden: MLP width.

    Shapes:
        z: (B, latent_dim) -> points (B, M, 2 + F), log_count (B,)
    """

    def __init__(self, latent_dim: int, num_features: int, num_points: int, query_dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.num_points = num_points
        self.queries = nn.Parameter(torch.empty(num_points, query_dim))
        self.lin_z = nn.Linear(latent_dim, hidden)
        self.lin_q = nn.Linear(query_dim, hidden, bias=False)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 + num_features))
        self.count = MLP(latent_dim, [hidden], 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.queries, std=1.0)
        for m in (self.lin_z, self.lin_q, self.count):
            m.reset_parameters()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.lin_z(z)[:, None, :] + self.lin_q(self.queries)[None]  # (B, M, hidden)
        return self.mlp(h), self.count(z).squeeze(-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_points={self.num_points})"


@register_model("edgeconv_ae")
class EdgeConvAutoencoder(AutoencoderModel):
    """Sparse EdgeConv autoencoder: EdgeConv encoder to a latent vector, set decoder back to the sparse image.

    The encoder (:class:`~graphevent.nn.encoders.edgeconv.EdgeConvEncoder`) gives node tokens
    and a pooled latent ``z``; the decoder (:class:`SetDecoder`) turns ``z`` into points ``(eta, phi, values)`` and a
    count of occupied pixels. The reconstruction loss is the Chamfer distance
    (:func:`~graphevent.nn.layers.set_loss.chamfer_distance`) between the event's nodes and
    the first ``n`` decoded points in ``(sqrt(pos_weight) * (eta, phi) / pos_scale,
    standardised values)`` space, which scores both *where* pixels are occupied and their values, plus
    ``count_weight * (log(1 + n_hat) - log(1 + n))^2`` for how many are occupied
    (set autoencoding as in Achlioptas et al., arXiv:1707.02392).

    Shapes:
        batch: PyG Batch with x (N, F), pos (N, 2), edge_index (2, E)
        -> encode: (N, dim), (B, dim); decode: (B, M, 2 + F), (B,);
        predict: ``{"recon_error": (B, F)}``.
    """

    config_class = EdgeConvAEConfig
    reconstructs = "edgeconv"
    recon_weights = {"chamfer": None, "count": "count_weight"}
    recon_error_label = "Chamfer: each node vs its nearest decoded point"
    not_exportable = "pretraining autoencoder: its output is a reconstruction error (Chamfer matching), not a task output"

    def __init__(self, info: DatasetInfo, config: EdgeConvAEConfig | None = None) -> None:
        super().__init__(info, config or EdgeConvAEConfig())
        c = self.config
        self.encoder = EdgeConvEncoder(info, c)
        self.decoder = SetDecoder(c.dim, info.num_node_features, c.num_points, c.query_dim, c.decoder_hidden)

    def decode(self, tokens: Tensor | None, pooled: Tensor, batch=None) -> tuple[Tensor, Tensor]:
        """Points ``(B, M, 2 + F)`` ((eta, phi) / pos_scale, standardised values) and ``log(1 + n)`` (B,),
        from the pooled latent alone (``tokens`` and ``batch`` are unused)."""
        return self.decoder(pooled)

    def _match(self, batch, z: Tensor, target: Tensor | None = None):
        """Chamfer terms between the event's nodes and its first n decoded points."""
        points, log_count = self.decode(None, z, batch)
        b, num_events = batch_vector(batch)
        x = self.encoder.norm(batch.x if target is None else target)
        pos = event_frame(batch.pos, b, num_events, self.info.periods) / self.config.pos_scale
        true, true_mask = point_set(pos, x, b, num_events, self.config.pos_weight)
        counts = true_mask.sum(1)
        slots = torch.arange(points.size(1), device=points.device)
        pred_mask = slots[None, :] < counts[:, None]
        w = math.sqrt(self.config.pos_weight)
        pred = torch.cat([w * points[..., :2], points[..., 2:]], dim=-1)
        cd, nearest, _ = chamfer_distance(pred, pred_mask, true, true_mask)
        count_err = (log_count.float() - torch.log1p(counts.float())).square()
        return cd, count_err, points, nearest, true, true_mask

    def recon_terms(self, batch, target: Tensor | None = None) -> dict[str, Tensor]:
        """``{"chamfer": .., "count": ..}`` batch means (before weighting)."""
        _, z = self.encode(batch)
        cd, count_err, *_ = self._match(batch, z, target)
        return {"chamfer": cd.mean(), "count": count_err.mean()}

    @torch.no_grad()
    def reconstruct(self, batch) -> Reconstruction:
        """Decoded points of every event, as many as its predicted pixel count (dataset units)."""
        tokens, z = self.encode(batch)
        points, log_count = self.decode(tokens, z, batch)
        n = torch.round(torch.expm1(log_count.float())).long().clamp(1, points.size(1))
        keep = torch.arange(points.size(1), device=points.device)[None, :] < n[:, None]  # (B, M)
        b = torch.arange(points.size(0), device=points.device)[:, None].expand_as(keep)[keep]
        sel = points[keep].float()
        pos = sel[:, :2] * self.config.pos_scale
        return Reconstruction(pos, self.encoder.norm.inverse(sel[:, 2:]), b, points.size(0))

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``recon_error (B, F)``: per event and channel, mean squared standardised error between
        each node and its nearest decoded point."""
        _, z = self.encode(batch)
        _, _, points, nearest, true, true_mask = self._match(batch, z)
        return {"recon_error": nearest_value_error(points[..., 2:], nearest, true[..., 2:], true_mask)}
