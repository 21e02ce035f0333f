"""The ``masked_gt`` encoder: a graph transformer over the (eta, phi) kNN graph of each event."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from graphevent.config.base import require_at_least_one
from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector, position_graph
from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.neighbours import EventPacking, NeighbourTable, batch_tables
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.pair_bias import DepositPT, PairBias, deposit_pt_columns
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.precision import at_least_float32, cast_parameters_once
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
        k: neighbours of the (eta, phi) graphs (the dataset's graph is reused when its k
            matches; on visible nodes only, the graph among them is rebuilt with k).
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


def graph_tables(edge_index: Tensor, batch: Tensor, num_events: int, layers) -> tuple[NeighbourTable, EventPacking | None]:
    """The neighbour table of ``edge_index`` and, if a layer has global attention, the per-event
    packing (one host sync for both): built once per forward pass, shared by all layers."""
    return batch_tables(edge_index, batch, num_events, packing=any(layer.global_attention for layer in layers))


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
    :func:`~graphevent.nn.batch.position_graph`); ``forward(batch, visible)`` on the
    visible nodes only, connected by a kNN graph rebuilt among them (masked pretraining).

    Args:
        info: dataset description (feature names and statistics).
        config: :class:`MaskedGTEncoderConfig` (or a config deriving from it, such as
            ``masked_gt_ae``'s :class:`~graphevent.nn.models.masked_gt_ae.MaskedGTConfig`).

    Shapes:
        batch: x (N, F), pos (N, 2), edge_index (2, E), edge_attr (E, 3); visible: (N,) bool
        -> tokens (N_visible, dim), pooled (B, dim)
    """

    config_class = MaskedGTEncoderConfig

    def __init__(self, info: DatasetInfo, config: MaskedGTEncoderConfig) -> None:
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
