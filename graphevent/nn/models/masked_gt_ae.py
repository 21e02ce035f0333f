"""Masked graph-transformer autoencoder (self-supervised pretraining by hidden-node reconstruction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer
from graphevent.nn.layers.neighbours import EventPacking, NeighbourTable, batch_tables, index_counts
from graphevent.nn.layers.masking import hashed_uniform, sample_hidden_nodes
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.pair_bias import DepositPT, PairBias, deposit_pt_columns
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.models.base import AutoencoderModel, batch_vector, event_keys, position_graph
from graphevent.nn.precision import at_least_float32, cast_parameters_once
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import register_encoder, register_model

POS_RANGE = 3.0  # Fourier period / 2 in units of pos_scale: covers +-1.1 in eta, phi at pos_scale 0.4


@dataclass(frozen=True)
class MaskedGTConfig:
    """Keyword arguments of ``masked_gt_ae``, and the section of the ``masked_gt`` encoder in the
    models that compose it (``multitask``, ``contrastive``, ...; the ``mask_*`` and ``decoder_*``
    fields are the pretraining objective's: the encoder itself ignores them).

    Args:
        dim: node token size D.
        depth: graph-transformer layers in the encoder.
        heads: attention heads (``dim`` and ``decoder_dim`` divisible by it).
        edge_dim: size of the embedded (deta, dphi, dR) edge features.
        ffn_ratio: FFN hidden size / dim.
        dropout: dropout in attention and FFNs.
        global_every: every n-th encoder layer also attends over all nodes of the event
            (0 = never).
        k: neighbours of the (eta, phi) graphs (the dataset's graph is reused when its k
            matches; during pretraining the graph among visible nodes is rebuilt with k).
        pos_scale: (eta, phi) and their differences are divided by this inside the model
            (default 0.4, a typical jet radius), so geometry inputs are of order one.
        pos_freqs: Fourier octaves of the position encoding.
        mask_ratio: fraction of nodes hidden per event in pretraining, in (0, 1).
        mask_mode: ``random`` nodes or contiguous ``patch`` es of neighbours.
        mask_patches: patch centres per event (``patch`` mode).
        decoder_dim: decoder token size (the decoder is light: small and shallow).
        decoder_depth: decoder graph-transformer layers over the full graph.
        decoder_global: give the decoder layers event-wide attention too.
        eval_mask_seed: seed of the deterministic per-event mask used in eval mode.
        pairwise: add ParT's pair biases (ln dR, ln kT, ln z, ln m^2 of each pair of deposits,
            :class:`~graphevent.nn.layers.pair_bias.PairBias`) to the encoder's kNN and
            event-wide attention logits (default off; the decoder never uses them: it would
            see the energies of the hidden nodes).
        pair_hidden: hidden width of the pair-bias MLPs.
        pair_event_wide: also bias the event-wide attention (every pair of nodes of an event:
            memory grows as events x nodes^2 x ``pair_hidden``); false: the kNN attention only.
        pair_event_wide_max_nodes: the event-wide pair biases are left out of a batch whose
            largest event has more nodes than this (default 1024: jets keep them; whole
            events of thousands of nodes get pair biases in the kNN attention only, whose
            memory grows as nodes x k).
        pair_pt_features: node features whose stored values (``log1p`` undone) sum to a
            deposit's pT (default empty: every unsigned channel, see
            :func:`~graphevent.nn.layers.pair_bias.deposit_pt_columns`).
    """

    dim: int = 64
    depth: int = 4
    heads: int = 4
    edge_dim: int = 16
    ffn_ratio: float = 2.0
    dropout: float = 0.0
    global_every: int = 2
    k: int = DEFAULT_K
    pos_scale: float = 0.4
    pos_freqs: int = 4
    mask_ratio: float = 0.5
    mask_mode: Literal["random", "patch"] = "patch"
    mask_patches: int = 4
    decoder_dim: int = 32
    decoder_depth: int = 1
    decoder_global: bool = False
    eval_mask_seed: int = 0
    pairwise: bool = False
    pair_hidden: int = 32
    pair_event_wide: bool = True
    pair_event_wide_max_nodes: int = 1024
    pair_pt_features: tuple[str, ...] = ()

    def validate(self, where: str = "model") -> None:
        for key in ("dim", "depth", "heads", "edge_dim", "k", "decoder_dim", "decoder_depth", "mask_patches", "pair_hidden",
                    "pair_event_wide_max_nodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} must be >= 1")
        for key in ("dim", "decoder_dim"):
            if getattr(self, key) % self.heads:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} is not divisible by heads={self.heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"{where}.mask_ratio: {self.mask_ratio}; expected a fraction in (0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout: {self.dropout}; expected a value in [0, 1)")
        if not self.pos_scale > 0:
            raise ConfigError(f"{where}.pos_scale: {self.pos_scale}; expected > 0")
        if self.global_every < 0:
            raise ConfigError(f"{where}.global_every: {self.global_every}; expected >= 0 (0 = no global attention)")


def graph_tables(edge_index: Tensor, batch: Tensor, num_events: int, layers) -> tuple[NeighbourTable, EventPacking | None]:
    """The neighbour table of ``edge_index`` and, if a layer has global attention, the per-event
    packing (one host sync for both): built once per forward pass, shared by all layers."""
    return batch_tables(edge_index, batch, num_events, packing=any(layer.global_attention for layer in layers))


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


@register_encoder("masked_gt")
class MaskedGTEncoder(nn.Module):
    r"""Graph-transformer encoder over the (eta, phi) kNN graph.

    .. math::
        h^0_i = \mathrm{MLP}([\tilde{x}_i, \gamma(p_i)]),\quad
        h^{l+1} = \mathrm{GTLayer}(h^l, E, \mathrm{MLP}_e(\Delta\eta, \Delta\phi, \Delta R)),\quad
        t_i = \mathrm{LN}(h^L_i),\quad z = \mathrm{mean}_i\, t_i

    ``x~`` is ``x`` standardised with the dataset's feature statistics, ``gamma`` the Fourier
    position encoding; positions and edge geometry are divided by ``pos_scale``. Every ``global_every``-th layer adds event-wide attention. The pooled
    embedding is a parameter-free mean (permutation invariant).

    With ``pairwise``, each deposit's pT (:class:`~graphevent.nn.layers.pair_bias.DepositPT`)
    and (eta, phi) give ParT's pair features of every node and its neighbours, and of every
    pair of nodes of an event; two :class:`~graphevent.nn.layers.pair_bias.PairBias` (one for
    the kNN attention, one for the event-wide attention, shared by all layers) turn them into
    one logit bias per head, computed once per forward pass.

    ``forward(batch)`` runs on the dataset's graph (rebuilt when the model's ``k`` differs,
    :func:`~graphevent.nn.models.base.position_graph`); ``forward(batch, visible)`` on the
    visible nodes only, connected by a kNN graph rebuilt among them (masked pretraining).

    Args:
        info: dataset description (feature names and statistics).
        config: :class:`MaskedGTConfig`.

    Shapes:
        batch: x (N, F), pos (N, 2), edge_index (2, E), edge_attr (E, 3); visible: (N,) bool
        -> tokens (N_visible, dim), pooled (B, dim)
    """

    config_class = MaskedGTConfig

    def __init__(self, info: DatasetInfo, config: MaskedGTConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.dim = self.out_dim = c.dim
        self.data_k, self.pixel_size = info.k, info.pixel_size
        self.pos_scale = c.pos_scale
        self.periods = info.periods  # Fourier features of each event's frame along a periodic axis
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.pos_enc = FourierPosition(2, c.pos_freqs, scale=POS_RANGE)
        self.embed = MLP(info.num_node_features + self.pos_enc.out_channels, [c.dim], c.dim)
        self.edge_embed = MLP(3, [c.edge_dim], c.edge_dim)
        self.layers = nn.ModuleList(
            GraphTransformerLayer(
                c.dim, c.heads, c.edge_dim, c.ffn_ratio, c.dropout,
                global_attention=c.global_every > 0 and (i + 1) % c.global_every == 0,
            )
            for i in range(c.depth)
        )
        self.out_norm = nn.LayerNorm(c.dim)
        # modules only when on: the state dicts of models without them are unchanged
        self.deposit_pt = (
            DepositPT(*deposit_pt_columns(info, c.pair_pt_features, "pair_pt_features of the masked_gt encoder"))
            if c.pairwise else None
        )
        self.pair_local = PairBias(c.heads, c.pair_hidden, periods=info.periods) if c.pairwise else None
        has_global = any(layer.global_attention for layer in self.layers)
        self.pair_global = (
            PairBias(c.heads, c.pair_hidden, periods=info.periods) if c.pairwise and c.pair_event_wide and has_global else None
        )

    def pair_biases(
        self, x: Tensor, pos: Tensor, table: NeighbourTable, packing: EventPacking | None, dtype: torch.dtype
    ) -> tuple[Tensor | None, Tensor | None]:
        """The kNN attention bias ``(N, K, H)`` (slot layout) and the event-wide one ``(B, H, M, M)``
        (``None`` without ``pairwise``, without global layers, or when the batch's largest event
        has more than ``pair_event_wide_max_nodes`` nodes)."""
        if self.deposit_pt is None:
            return None, None
        pt = self.deposit_pt(x)
        src = table.source
        local = self.pair_local(pos[:, None], pt[:, None], pos[src], pt[src], dtype)
        event = None
        if packing is not None and self.pair_global is not None and packing.mask.size(1) <= self.config.pair_event_wide_max_nodes:
            p, t = packing.pack(pos.float()), packing.pack(pt[:, None])[..., 0]  # (B, M, 2), (B, M)
            event = self.pair_global(p[:, :, None], t[:, :, None], p[:, None], t[:, None], dtype).permute(0, 3, 1, 2)
        return local, event

    def forward(self, batch, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        from graphevent.nn.layers.knn import edge_features, knn_graph

        b, num_events = batch_vector(batch)
        if visible is None:
            edge_index, edge_attr = position_graph(batch, self.config.k, self.data_k, self.pixel_size, self.periods)
            return self.encode_graph(batch.x, batch.pos, edge_index, edge_attr, b, num_events)
        keep = visible.nonzero().view(-1)  # one host sync for the three selections
        x, pos, bv = batch.x[keep], batch.pos[keep], b[keep]
        edge_index = knn_graph(pos, bv, self.config.k, num_events, self.pixel_size, self.periods)
        return self.encode_graph(x, pos, edge_index, edge_features(pos, edge_index, self.periods), bv, num_events)

    def encode_graph(
        self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor, num_events: int
    ) -> tuple[Tensor, Tensor]:
        """Tokens ``(N, dim)`` and pooled embedding ``(B, dim)`` of nodes ``x`` on the given graph."""
        tokens, _ = self.forward_states(x, pos, edge_index, edge_attr, batch, num_events)
        return tokens, global_mean_pool(at_least_float32(tokens), batch, size=num_events).to(tokens.dtype)

    def forward_states(
        self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor, num_events: int
    ) -> tuple[Tensor, list[Tensor]]:
        """The output tokens ``(N, dim)`` and every layer's output ``h^1 .. h^L`` (each ``(N, dim)``,
        before the final norm): what an EMA teacher's targets are made of (``masked_gt_latent``)."""
        table, packing = graph_tables(edge_index, batch, num_events, self.layers)
        # inputs, Fourier features and edge geometry in fp32; the layers in the compute dtype
        feats = torch.cat([self.norm(x), self.pos_enc(event_frame(pos, batch, num_events, self.periods) / self.pos_scale)], dim=-1)
        geometry = table.edges_to_slots(edge_attr) / self.pos_scale
        states = []
        with cast_parameters_once(self, x.device.type) as dtype:
            h = self.embed(feats.to(dtype))
            e = self.edge_embed(geometry.to(dtype))  # (N, K, edge_dim)
            local, event = self.pair_biases(x, pos, table, packing, dtype)
            for layer in self.layers:
                h = layer(h, table, e, packing, local, event)
                states.append(h)
            tokens = self.out_norm(h)
        return tokens, states


class MaskedGTDecoder(nn.Module):
    r"""Light decoder: visible tokens plus a shared mask token at hidden positions, over the full graph.

    .. math::
        d_i = \begin{cases} W t_i & i\ \text{visible} \\ m & i\ \text{hidden} \end{cases}
        + \mathrm{MLP}(\gamma(p_i)),\qquad \hat{x}_i = W_o\,\mathrm{LN}(\mathrm{GTLayer}^{L_d}(d))_i

    Args:
        info: dataset description.
        config: :class:`MaskedGTConfig` (``decoder_*`` fields).
        out_channels: size of each predicted row (default: the dataset's F channels; the
            latent predictor of ``masked_gt_latent`` predicts ``dim``-sized tokens).

    Shapes:
        tokens: (N_visible, dim), visible: (N,) bool, pos: (N, 2), edge_index: (2, E),
        edge_attr: (E, 3), batch: (N,), num_events: B -> (N, out_channels), by default
        standardised values (N, F)
    """

    def __init__(self, info: DatasetInfo, config: MaskedGTConfig, out_channels: int | None = None) -> None:
        super().__init__()
        c = config
        self.pos_scale = c.pos_scale
        self.periods = info.periods
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

    def forward(
        self, tokens: Tensor, visible: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor,
        num_events: int,
    ) -> Tensor:
        idx = visible.nonzero().view(-1)
        table, packing = graph_tables(edge_index, batch, num_events, self.layers)
        fourier = self.pos_enc(event_frame(pos, batch, num_events, self.periods) / self.pos_scale)  # fp32, as the edge geometry
        geometry = table.edges_to_slots(edge_attr) / self.pos_scale
        with cast_parameters_once(self, pos.device.type) as dtype:
            tokens = tokens.to(dtype)
            full = tokens.new_zeros(visible.size(0), tokens.size(1)).index_copy(0, idx, tokens)
            h = torch.where(visible[:, None], self.proj(full), self.mask_token)
            h = h + self.pos_embed(fourier.to(dtype))
            e = self.edge_embed(geometry.to(dtype))
            for layer in self.layers:
                h = layer(h, table, e, packing)
            return self.head(self.out_norm(h))


@register_model("masked_gt_ae")
class MaskedGTAutoencoder(AutoencoderModel):
    """Masked graph-transformer autoencoder: hide nodes, encode the rest, reconstruct the hidden ones.

    Masked-autoencoder pretraining (He et al., "Masked Autoencoders Are Scalable Vision
    Learners", arXiv:2111.06377; on point clouds: Pang et al., Point-MAE, arXiv:2203.06604)
    on the kNN graph of each event. A fraction ``mask_ratio`` of each event's nodes is
    hidden (:func:`~graphevent.nn.layers.masking.sample_hidden_nodes`: random nodes or
    contiguous patches); the encoder (:class:`MaskedGTEncoder`) sees only the visible
    nodes, connected by a kNN graph rebuilt among them; the decoder
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
        b, num_events = batch_vector(batch)
        if hidden is None:
            hidden = torch.zeros(b.numel(), dtype=torch.bool, device=b.device)
        edge_index, edge_attr = position_graph(batch, self.config.k, self.info.k, self.info.pixel_size, self.info.periods)
        return self.decoder(tokens, ~hidden, batch.pos, edge_index, edge_attr, b, num_events)

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
