"""Masked graph-transformer autoencoder (self-supervised pretraining by hidden-node reconstruction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector, event_keys, stored_neighbours
from graphevent.nn.encoders.masked_gt import POS_RANGE, MaskedGTEncoder, MaskedGTEncoderConfig
from graphevent.nn.layers.dense_knn import dense_edge_geometry, dense_knn, lattice
from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer
from graphevent.nn.layers.masking import hashed_uniform, sample_hidden_nodes
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.packing import index_counts
from graphevent.nn.layers.periodic import dense_event_frame
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.models.base import AutoencoderModel
from graphevent.nn.precision import cast_parameters_once
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class MaskedGTConfig(MaskedGTEncoderConfig):
    """Keyword arguments of ``masked_gt_ae``: the ``masked_gt`` encoder's
    (:class:`~graphevent.nn.encoders.masked_gt.MaskedGTEncoderConfig`) and the pretraining
    objective's. It is also the ``masked_gt`` section of the models that compose the encoder
    (``multitask``'s auxiliary reconstruction reads the ``mask_*`` and ``decoder_*`` fields).

    Args:
        mask_ratio: fraction of nodes hidden per event in pretraining, in (0, 1).
        mask_mode: ``random`` nodes or contiguous ``patch`` es of neighbours.
        mask_patches: patch centres per event (``patch`` mode).
        decoder_dim: decoder token size (the decoder is light: small and shallow; divisible by ``heads``).
        decoder_depth: decoder graph-transformer layers over the full graph.
        decoder_global: give the decoder layers event-wide attention too.
        eval_mask_seed: seed of the deterministic per-event mask used in eval mode.
    """

    mask_ratio: float = 0.5
    mask_mode: Literal["random", "patch"] = "patch"
    mask_patches: int = 4
    decoder_dim: int = 32
    decoder_depth: int = 1
    decoder_global: bool = False
    eval_mask_seed: int = 0

    def validate(self, where: str = "model") -> None:
        super().validate(where)
        require_at_least_one(self, where, "decoder_dim", "decoder_depth", "mask_patches")
        if self.decoder_dim % self.heads:
            raise ConfigError(f"{where}.decoder_dim: {self.decoder_dim} is not divisible by heads={self.heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"{where}.mask_ratio: {self.mask_ratio}; expected a fraction in (0, 1)")


def mask_nodes(batch, config: MaskedGTConfig, training: bool, generator: torch.Generator | None = None,
               periods: tuple[float, float] | None = None) -> Tensor:
    """Boolean ``(N,)``: which nodes to hide (a new tensor), by ``config``'s ``mask_*`` fields.

    Masks are drawn with ``torch.rand`` when ``training`` (pass a ``generator`` for
    reproducibility) and otherwise from a hash of ``(event_id, node)``, so an event's
    evaluation mask does not depend on its batch. Patches wrap along the axes ``periods`` names.
    """
    b, num_events = batch_vector(batch)
    n = b.numel()
    if training:
        device = b.device if generator is None else generator.device
        noise = torch.rand(n, generator=generator, device=device).to(b.device)
    else:
        counts = index_counts(b, num_events)
        local = torch.arange(n, device=b.device) - (torch.cumsum(counts, 0) - counts)[b]
        noise = hashed_uniform(event_keys(batch, b, num_events), local, config.eval_mask_seed)
    return sample_hidden_nodes(batch.pos, b, noise, config.mask_ratio, config.mask_mode, config.mask_patches, num_events, periods)


class MaskedGTDecoder(nn.Module):
    r"""Light decoder: visible tokens plus a shared mask token at hidden positions, over every node's
    (eta, phi) neighbours (padded events, as the encoder).

    .. math::
        d_i = \begin{cases} W t_i & i\ \text{visible} \\ m & i\ \text{hidden} \end{cases}
        + \mathrm{MLP}(\gamma(p_i)),\qquad \hat{x}_i = W_o\,\mathrm{LN}(\mathrm{GTLayer}^{L_d}(d))_i

    Args:
        info: dataset description.
        config: :class:`MaskedGTConfig` (``decoder_*`` fields).
        out_channels: size of each predicted row (default: the dataset's F channels; the
            latent predictor of ``masked_gt_latent`` predicts ``dim``-sized tokens).

    Shapes:
        tokens: (N_visible, dim), visible: (N,) bool, batch: the events (pos (N, 2))
        -> (N, out_channels), by default standardised values (N, F)
    """

    def __init__(self, info: DatasetInfo, config: MaskedGTConfig, out_channels: int | None = None) -> None:
        super().__init__()
        c = config
        self.pos_scale = c.pos_scale
        self.periods = info.periods
        self.k, self.pixel_size, self.data_k = c.k, lattice(info), info.k
        self.proj = nn.Linear(c.dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(c.decoder_dim))
        self.pos_enc = FourierPosition(2, c.pos_freqs, scale=POS_RANGE)
        self.pos_embed = MLP(self.pos_enc.out_channels, [c.decoder_dim], c.decoder_dim)
        self.edge_embed = MLP(3, [c.edge_dim], c.edge_dim)
        self.layers = nn.ModuleList(
            GraphTransformerLayer(c.decoder_dim, c.heads, c.edge_dim, c.ffn_ratio, 0.0, c.decoder_global)
            for _ in range(c.decoder_depth)
        )
        self.out_norm = nn.LayerNorm(c.decoder_dim)
        self.head = nn.Linear(c.decoder_dim, info.num_node_features if out_channels is None else out_channels)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: Tensor, visible: Tensor, batch) -> Tensor:
        from torch_geometric.utils import to_dense_batch

        b, num_events = batch_vector(batch)
        full = tokens.new_zeros(visible.size(0), tokens.size(1)).index_copy(0, visible.nonzero().view(-1), tokens)
        full, mask = to_dense_batch(full, b, batch_size=num_events)  # (B, M, dim): every node's slot
        seen = to_dense_batch(visible, b, batch_size=num_events)[0]
        pos = to_dense_batch(batch.pos, b, batch_size=num_events)[0]
        neighbours = stored_neighbours(batch, self.k, self.data_k)
        idx, valid = dense_knn(pos, mask, self.k, True, False, self.pixel_size, self.periods) if neighbours is None else neighbours
        fourier = self.pos_enc(dense_event_frame(pos, mask, self.periods) / self.pos_scale)  # fp32, as the edge geometry
        geometry = dense_edge_geometry(pos, idx, self.periods) / self.pos_scale
        with cast_parameters_once(self, pos.device.type) as dtype:
            h = torch.where(seen[..., None], self.proj(full.to(dtype)), self.mask_token)
            h = h + self.pos_embed(fourier.to(dtype))
            e = self.edge_embed(geometry.to(dtype))
            for layer in self.layers:
                h = layer(h, idx, valid, e, mask)
            return self.head(self.out_norm(h))[mask]


@register_model("masked_gt_ae")
class MaskedGTAutoencoder(AutoencoderModel):
    """Masked graph-transformer autoencoder: hide nodes, encode the rest, reconstruct the hidden ones.

    Masked-autoencoder pretraining (He et al., "Masked Autoencoders Are Scalable Vision
    Learners", arXiv:2111.06377; on point clouds: Pang et al., Point-MAE, arXiv:2203.06604)
    on the kNN graph of each event. A fraction ``mask_ratio`` of each event's nodes is
    hidden (:func:`~graphevent.nn.layers.masking.sample_hidden_nodes`: random nodes or
    contiguous patches); the encoder
    (:class:`~graphevent.nn.encoders.masked_gt.MaskedGTEncoder`) sees only the visible nodes,
    connected by a kNN graph rebuilt among them; the decoder
    (:class:`MaskedGTDecoder`) places a mask token at every hidden position and predicts
    the standardised channel values there. The loss is the mean squared error over hidden
    nodes only. Without a mask (``encode(batch)``, fine-tuning) the encoder runs on all
    nodes and the dataset's graph.

    Masks are drawn with ``torch.rand`` in training mode (pass a ``generator`` for
    reproducibility) and from a hash of ``(event_id, node)`` in eval mode, so an event's
    evaluation mask does not depend on its batch. Caller tensors are never modified.

    Shapes:
        batch: PyG Batch with x (N, F), pos (N, 2) -> encode: (N, dim), (B, dim);
        predict: ``{"recon_error": (B, F)}``.
    """

    config_class = MaskedGTConfig
    reconstructs = "masked_gt"
    recon_error_label = "masked nodes: hidden nodes vs their reconstruction"
    not_exportable = "pretraining autoencoder: its output is a reconstruction error with random masking, not a task output"

    def __init__(self, info: DatasetInfo, config: MaskedGTConfig | None = None) -> None:
        super().__init__(info, config or MaskedGTConfig())
        self.encoder = MaskedGTEncoder(info, self.config)
        self.decoder = MaskedGTDecoder(info, self.config)

    def mask_nodes(self, batch, generator: torch.Generator | None = None) -> Tensor:
        """Boolean ``(N,)``: which nodes to hide (:func:`mask_nodes` in this model's mode)."""
        return mask_nodes(batch, self.config, self.training, generator, self.info.periods)

    # ------------------------------------------------------------------ autoencoder
    def encode(self, batch, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Node tokens and pooled embedding, of all nodes or only of ``visible`` ones.

        Shapes:
            visible: (N,) bool or None -> tokens (N_visible, dim), pooled (B, dim)
        """
        return self.encoder(batch, visible)

    def decode(self, tokens: Tensor, pooled: Tensor, batch, hidden: Tensor | None = None) -> Tensor:
        """Standardised values ``(N, F)`` predicted at every node from the visible tokens
        (meaningful at hidden nodes; visible rows are not trained). ``tokens`` are those of
        the nodes not ``hidden`` (all nodes if ``hidden`` is ``None``); ``pooled`` is unused."""
        if hidden is None:
            hidden = torch.zeros(batch.num_nodes, dtype=torch.bool, device=batch.pos.device)
        return self.decoder(tokens, ~hidden, batch)

    def _reconstruct_standardised(self, batch, hidden: Tensor | None) -> tuple[Tensor, Tensor]:
        hidden = self.mask_nodes(batch) if hidden is None else hidden
        tokens, pooled = self.encode(batch, visible=~hidden)
        return self.decode(tokens, pooled, batch, hidden), hidden

    def recon_loss(self, batch, target: Tensor | None = None, hidden: Tensor | None = None) -> Tensor:
        """Mean squared error of the standardised values over hidden nodes only.

        Args:
            batch: the events.
            target: (N, F) values to reconstruct (default ``batch.x``); only hidden rows count.
            hidden: (N,) bool mask to use (default: :meth:`mask_nodes`).
        """
        pred, hidden = self._reconstruct_standardised(batch, hidden)
        target = self.encoder.norm(batch.x if target is None else target)
        err = (pred.float() - target.float()).square() * hidden[:, None]
        return err.sum() / (hidden.sum().clamp(min=1) * err.size(1))

    @torch.no_grad()
    def reconstruct(self, batch, hidden: Tensor | None = None) -> Reconstruction:
        """Every node at its position; hidden nodes carry predicted values (dataset units)."""
        pred, hidden = self._reconstruct_standardised(batch, hidden)
        values = torch.where(hidden[:, None], self.encoder.norm.inverse(pred.float()), batch.x.float())
        b, num_events = batch_vector(batch)
        return Reconstruction(batch.pos, values, b, num_events, hidden)

    # ------------------------------------------------------------------ GraphModel
    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``recon_error (B, F)``: per event and channel, mean squared standardised error over hidden nodes."""
        pred, hidden = self._reconstruct_standardised(batch, None)
        b, num_events = batch_vector(batch)
        err = (pred.float() - self.encoder.norm(batch.x).float()).square()
        err = scatter(err[hidden], b[hidden], dim=0, dim_size=num_events, reduce="mean")
        return {"recon_error": err}
