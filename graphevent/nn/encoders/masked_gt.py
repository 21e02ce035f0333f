"""The ``masked_gt`` encoder: a graph transformer over the (eta, phi) kNN graph of each event."""

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
from graphevent.nn.layers.dense_knn import dense_edge_geometry, dense_knn, gather_nodes, lattice
from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.pair_bias import DepositPT, PairBias, deposit_pt_columns
from graphevent.nn.layers.periodic import dense_event_frame
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.precision import cast_parameters_once
from graphevent.nn.registry import register_encoder

POS_RANGE = 3.0  # Fourier period / 2 in units of pos_scale: covers +-1.1 in eta, phi at pos_scale 0.4


@dataclass(frozen=True)
class MaskedGTEncoderConfig:
    """Settings of the ``masked_gt`` encoder (``masked_gt_ae``'s config derives from it).

    Args:
        dim: node token size D.
        depth: graph-transformer layers.
        heads: attention heads (``dim`` divisible by it).
        edge_dim: size of the embedded (deta, dphi, dR) edge features.
        ffn_ratio: FFN hidden size / dim.
        dropout: dropout in attention and FFNs.
        global_every: every n-th layer also attends over all nodes of the event (0 = never).
        k: neighbours in (eta, phi), found by the model (:func:`~graphevent.nn.layers.dense_knn.dense_knn`:
            the dataset's graph when its k is the same; on visible nodes only, among them).
        pos_scale: (eta, phi) and their differences are divided by this inside the model
            (default 0.4, a typical jet radius), so geometry inputs are of order one.
        pos_freqs: Fourier octaves of the position encoding.
        pairwise: add ParT's pair biases (ln dR, ln kT, ln z, ln m^2 of each pair of deposits,
            :class:`~graphevent.nn.layers.pair_bias.PairBias`) to the kNN and event-wide
            attention logits (default off; a decoder never uses them: it would see the
            energies of the hidden nodes).
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
    pairwise: bool = False
    pair_hidden: int = 32
    pair_event_wide: bool = True
    pair_event_wide_max_nodes: int = 1024
    pair_pt_features: tuple[str, ...] = ()

    def validate(self, where: str = "model") -> None:
        require_at_least_one(self, where, "dim", "depth", "heads", "edge_dim", "k", "pair_hidden", "pair_event_wide_max_nodes")
        if self.dim % self.heads:
            raise ConfigError(f"{where}.dim: {self.dim} is not divisible by heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout: {self.dropout}; expected a value in [0, 1)")
        if not self.pos_scale > 0:
            raise ConfigError(f"{where}.pos_scale: {self.pos_scale}; expected > 0")
        if self.global_every < 0:
            raise ConfigError(f"{where}.global_every: {self.global_every}; expected >= 0 (0 = no global attention)")


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

    One forward path, :meth:`forward_padded`, on padded events (training pads its batch,
    export runs it on the experiment's arrays). ``forward(batch)`` runs on every node;
    ``forward(batch, visible)`` on the visible nodes only, their neighbours found among them
    (masked pretraining): the hidden nodes are left out of the mask.

    Args:
        info: dataset description (feature names and statistics).
        config: :class:`MaskedGTEncoderConfig` (or a config deriving from it, such as
            ``masked_gt_ae``'s :class:`~graphevent.nn.models.masked_gt_ae.MaskedGTConfig`).

    Shapes:
        batch: x (N, F), pos (N, 2); visible: (N,) bool -> tokens (N_visible, dim), pooled (B, dim)
    """

    config_class = MaskedGTEncoderConfig

    def __init__(self, info: DatasetInfo, config: MaskedGTEncoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.dim = self.out_dim = c.dim
        self.k, self.pixel_size, self.onnx, self.data_k = int(c.k), lattice(info), False, info.k
        self.pos_scale = float(c.pos_scale)
        self.event_wide_max_nodes = int(c.pair_event_wide_max_nodes)
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
        self, features: Tensor, positions: Tensor, idx: Tensor, dtype: torch.dtype
    ) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """The kNN attention bias ``(B, N, k, H)`` and the event-wide one ``(B, H, N, N)``
        (``None`` without ``pairwise``, without global layers, or when the batch has more than
        ``pair_event_wide_max_nodes`` node slots); pair features in fp32, the MLPs in ``dtype``."""
        if self.deposit_pt is None or self.pair_local is None:
            return None, None
        pt = self.deposit_pt(features)  # (B, N)
        local = self.pair_local(positions[:, :, None], pt[:, :, None], gather_nodes(positions, idx),
                                gather_nodes(pt[..., None], idx)[..., 0], dtype)
        event: Optional[Tensor] = None
        if self.pair_global is not None and positions.shape[1] <= self.event_wide_max_nodes:
            event = self.pair_global(positions[:, :, None], pt[:, :, None], positions[:, None], pt[:, None], dtype).permute(0, 3, 1, 2)
        return local, event

    @torch.jit.unused  # an exported model runs forward_padded
    def forward(self, batch, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        features, positions, mask = padded_nodes(batch, visible)
        neighbours = stored_neighbours(batch, self.k, self.data_k) if visible is None else None
        with cast_parameters_once(self, features.device.type):
            tokens, pooled = self.forward_padded(features, positions, mask, neighbours)
        return tokens[mask], pooled.to(tokens.dtype)

    @torch.jit.unused
    def states(self, batch) -> list[Tensor]:
        """Every layer's output ``h^1 .. h^L`` (each ``(N, dim)``, before the final norm) on every
        node: what an EMA teacher's targets are made of (``masked_gt_latent``)."""
        features, positions, mask = padded_nodes(batch)
        neighbours = stored_neighbours(batch, self.k, self.data_k)
        with cast_parameters_once(self, features.device.type):
            return [h[mask] for h in self.forward_states(features, positions, mask, neighbours)[1]]

    def forward_padded(
        self, features: Tensor, positions: Tensor, mask: Tensor, neighbours: Optional[Tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, Tensor]:
        """Tokens ``(B, N, dim)`` and their mean over each event's valid nodes ``(B, dim)``
        (fp32 at least); values at padding (NaN too) are ignored. ``neighbours``: each node's
        (eta, phi) neighbours, if known (the stored graph's slots); found otherwise.

        Shapes:
            features: (B, N, F), positions: (B, N, 2), mask: (B, N) bool
        """
        tokens = self.forward_states(features, positions, mask, neighbours)[0]
        return tokens, masked_mean(tokens, mask)

    def forward_states(
        self, features: Tensor, positions: Tensor, mask: Tensor, neighbours: Optional[Tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, list[Tensor]]:
        """The output tokens ``(B, N, dim)`` and every layer's output (each ``(B, N, dim)``,
        before the final norm). Inputs, Fourier features, edge geometry and pair biases in fp32;
        the layers in the parameters' dtype (a :func:`cast_parameters_once` block's)."""
        features, positions = zero_padding(features, positions, mask)
        if neighbours is None:
            idx, valid = dense_knn(positions, mask, self.k, True, self.onnx, self.pixel_size, self.periods)
        else:
            idx, valid = neighbours
        frame = dense_event_frame(positions, mask, self.periods)
        feats = torch.cat([self.norm(features), self.pos_enc(frame / self.pos_scale)], dim=-1)
        geometry = dense_edge_geometry(positions, idx, self.periods) / self.pos_scale
        dtype = self.embed.net[0].weight.dtype
        h = self.embed(feats.to(dtype))
        e = self.edge_embed(geometry.to(dtype))  # (B, N, k, edge_dim)
        local, event = self.pair_biases(features, positions, idx, dtype)
        states: list[Tensor] = []
        for layer in self.layers:
            h = layer(h, idx, valid, e, mask, local, event)
            states.append(h)
        return self.out_norm(h), states
