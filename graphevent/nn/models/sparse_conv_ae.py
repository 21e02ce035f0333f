"""Submanifold sparse-convolution autoencoder: sparse ResNet encoder, generative sparse transposed-convolution decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.pixels import pixel_coords
from graphevent.nn.layers.sparse_conv_transpose import SparseConvTranspose2d
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.layers.sparse_res_block import SparseResBlock
from graphevent.nn.layers.sparse_strided_conv import SparseStridedConv2d
from graphevent.nn.layers.submanifold_conv import SubmanifoldConv2d
from graphevent.nn.models.base import AutoencoderModel, Stage, batch_vector
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import register_encoder, register_model


@dataclass(frozen=True)
class SparseConvConfig:
    """Keyword arguments of ``sparse_conv_ae``, and the section of the ``sparse_conv`` encoder in
    the models that compose it (the decoder's and loss's fields are ignored by the encoder).

    Args:
        channels: feature channels per lattice level, finest first; each further level is a
            strided sparse convolution (``stride``) down from the previous one, so
            ``len(channels) - 1`` downsamplings (at least 1).
        blocks: residual blocks per level in the encoder.
        kernel_size: odd kernel of the submanifold convolutions.
        stride: downsampling factor between levels.
        dim: node token and pooled embedding size D.
        bottleneck: channels per coarsest-level site handed to the decoder (with the pooled
            embedding): the sparse latent.
        decoder_blocks: residual blocks per level in the decoder.
        pos_scale: the site's (eta, phi) / pos_scale are input features next to the values
            (default 0.4, a typical jet radius).
        pixel_size: (eta, phi) pixel size of the lattice; unset: the dataset's image pixel
            size (needed for point datasets without image geometry).
        occupancy_weight: weight of the occupancy loss (binary cross entropy of which
            candidate pixels are occupied) next to the values' mean squared error.
        conv_algorithm: how submanifold convolutions compute (:class:`SubmanifoldConv2d`):
            ``rules`` (products over the active neighbour pairs only; the default, faster) or
            ``gather`` (all k*k neighbour rows, one product, one host sync fewer). Same weights, same
            results up to rounding, so it can differ between pretraining and fine-tuning.
    """

    channels: tuple[int, ...] = (16, 32, 32)
    blocks: int = 2
    kernel_size: int = 3
    stride: int = 2
    dim: int = 64
    bottleneck: int = 16
    decoder_blocks: int = 1
    pos_scale: float = 0.4
    pixel_size: tuple[float, float] | None = None
    occupancy_weight: float = 1.0
    conv_algorithm: Literal["gather", "rules"] = "rules"

    def validate(self, where: str = "model") -> None:
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ConfigError(f"{where}.channels: {list(self.channels)}; expected at least 2 levels of sizes >= 1")
        for key in ("blocks", "dim", "bottleneck", "decoder_blocks"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: {self.kernel_size}; expected an odd size >= 1")
        if self.stride < 2:
            raise ConfigError(f"{where}.stride: {self.stride}; expected >= 2")
        if self.pos_scale <= 0 or self.occupancy_weight < 0:
            raise ConfigError(
                f"{where}: pos_scale must be > 0 and occupancy_weight >= 0 (found {self.pos_scale}, {self.occupancy_weight})"
            )
        if self.pixel_size is not None and min(self.pixel_size) <= 0:
            raise ConfigError(f"{where}.pixel_size: {list(self.pixel_size)}; expected two sizes > 0")


@dataclass
class SparseLevels:
    """The lattices of one batch: ``lattices[0]`` the occupied pixels, ``lattices[l]`` level l;
    ``links[l]`` = (parent, offset) of level-l sites in level l + 1; ``site`` (N,): each node's
    level-0 site (nodes in one pixel share it)."""

    lattices: list[SparseLattice]
    links: list[tuple[Tensor, Tensor]]
    site: Tensor

    def node_to_level(self, level: int) -> Tensor:
        """(N,) each node's site at ``level``."""
        idx = self.site
        for parent, _ in self.links[:level]:
            idx = parent[idx]
        return idx


def _max_per_event(x: Tensor, event: Tensor, num_events: int) -> Tensor:
    """(B, C) maximum over each event's rows; 0 for an event without rows (as ``global_max_pool``).

    ``event`` must be sorted (lattice sites are), so this is a segment reduction: on CPU a few
    times faster than a scatter, forward and backward.
    """
    ptr = torch.searchsorted(event, torch.arange(num_events + 1, device=event.device))
    out = torch.segment_reduce(x, "max", offsets=ptr)
    return torch.where((ptr[1:] > ptr[:-1])[:, None], out, 0.0)


@register_encoder("sparse_conv")
class SparseConvEncoder(nn.Module):
    r"""Sparse ResNet encoder on the occupied pixels (submanifold sparse convolutions).

    .. math::
        h^0 = \mathrm{ReLU}(\mathrm{BN}(\mathrm{SC}([\tilde{x}_u, p_u / s]))) \to \mathrm{Res}^{n},\quad
        h^{l+1} = \mathrm{Res}^{n}(\mathrm{ReLU}(\mathrm{BN}(\mathrm{Down}(h^l)))),\\
        t_u = \mathrm{GELU}(\mathrm{LN}(W[h^0_u, h^1_{\pi(u)}, \dots])),\quad
        z = \mathrm{MLP}([\mathrm{mean}_u t_u, \max_u t_u])

    Sites ``u`` are the occupied pixels (``(row, col)`` recovered from the node positions,
    :func:`~graphevent.nn.layers.pixels.pixel_coords`); ``x~`` the standardised values of the
    pixel (nodes sharing a pixel are summed first), ``SC`` a
    :class:`SubmanifoldConv2d`, ``Res`` :class:`SparseResBlock`, ``Down`` a
    :class:`SparseStridedConv2d` to the next coarser lattice and ``pi(u)`` a site's cell
    there (Graham & van der Maaten, arXiv:1706.01307; Graham et al., arXiv:1711.10275).
    The token of a pixel fuses its features at every level; each node gets its pixel's token.

    Args:
        info: dataset description (features, statistics, image geometry).
        config: :class:`SparseConvConfig`.

    Shapes:
        batch: x (N, F), pos (N, 2) -> tokens (N, dim), pooled (B, dim)
    """

    config_class = SparseConvConfig
    not_exportable = "its sparse convolutions hash the occupied pixels into lattices of data-dependent size"

    def __init__(self, info: DatasetInfo, config: SparseConvConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.out_dim = c.dim
        self.stride = c.stride
        self.pos_scale = c.pos_scale
        self.pixel_size = tuple(c.pixel_size) if c.pixel_size is not None else info.pixel_size
        self.shape = tuple(info.image_shape[1:]) if info.image_shape is not None else None
        self.periods = info.periods
        # a periodic phi: the lattice's columns wrap (the image's width, every level a whole number of cells)
        self.col_period = int(self.shape[1]) if self.shape is not None and info.periods and info.periods[1] else 0
        if self.col_period and self.col_period % c.stride ** (len(c.channels) - 1):
            raise ConfigError(
                f"model.stride: {c.stride} over {len(c.channels) - 1} levels does not divide the {self.col_period} phi "
                "columns of a periodic image; expected a width divisible by stride ** (levels - 1)"
            )
        self.norm = Standardize(info.node_features, info.feature_stats)
        self.stem = SubmanifoldConv2d(info.num_node_features + 2, c.channels[0], c.kernel_size, bias=False, algorithm=c.conv_algorithm)
        self.stem_bn = nn.BatchNorm1d(c.channels[0])
        self.down = nn.ModuleList(SparseStridedConv2d(a, b, c.stride, bias=False) for a, b in zip(c.channels[:-1], c.channels[1:]))
        self.down_bn = nn.ModuleList(nn.BatchNorm1d(b) for b in c.channels[1:])
        self.levels = nn.ModuleList(
            nn.ModuleList(SparseResBlock(ch, c.kernel_size, algorithm=c.conv_algorithm) for _ in range(c.blocks)) for ch in c.channels
        )
        self.token = nn.Sequential(nn.Linear(sum(c.channels), c.dim), nn.LayerNorm(c.dim), nn.GELU())
        self.latent = MLP(2 * c.dim, [c.dim], c.dim)

    # ------------------------------------------------------------------ geometry
    def sparse_levels(self, pos: Tensor, batch: Tensor) -> SparseLevels:
        """The occupied pixels of every event and the coarser lattices under them."""
        if self.pixel_size is None:
            raise ConfigError(
                "model.pixel_size: the dataset has no image geometry (pixel_size) and none is set; "
                "set model.pixel_size: [d_eta, d_phi] for the sparse-convolution lattice"
            )
        row, col = pixel_coords(pos, self.pixel_size, self.shape)
        lattice, site = SparseLattice.from_coords(batch, row, col, self.col_period)
        lattices, links = [lattice], []
        for _ in self.down:
            coarse, parent, offset = lattices[-1].coarsen(self.stride)
            lattices.append(coarse)
            links.append((parent, offset))
        return SparseLevels(lattices, links, site)

    def site_positions(self, lattice: SparseLattice) -> Tensor:
        """(S, 2) (eta, phi) of level-0 sites (the preprocessing's pixel centres)."""
        off_r = (self.shape[0] - 1) / 2 if self.shape is not None else 0.0
        off_c = (self.shape[1] - 1) / 2 if self.shape is not None else 0.0
        eta = (lattice.row.double() - off_r) * self.pixel_size[0]
        phi = (lattice.col.double() - off_c) * self.pixel_size[1]
        return torch.stack([eta, phi], 1).float()

    def site_values(self, x: Tensor, levels: SparseLevels) -> Tensor:
        """(S, F) raw values per occupied pixel (nodes in one pixel summed)."""
        return scatter(x, levels.site, dim=0, dim_size=levels.lattices[0].num_sites, reduce="sum")

    # ------------------------------------------------------------------ forward
    def features(self, x: Tensor, levels: SparseLevels) -> list[Tensor]:
        """Site features of every level, finest first: ``[(S_0, C_0), (S_1, C_1), ...]``."""
        lat = levels.lattices
        pos = event_frame(self.site_positions(lat[0]), lat[0].event, None, self.periods)  # periodic axes: the event's frame
        inp = torch.cat([self.norm(self.site_values(x, levels)), pos / self.pos_scale], -1)
        h = torch.relu(self.stem_bn(self.stem(inp.to(x.dtype), lat[0])))
        feats = []
        for level, blocks in enumerate(self.levels):
            if level > 0:
                h, _ = self.down[level - 1](h, lat[level - 1])
                h = torch.relu(self.down_bn[level - 1](h))
            for block in blocks:
                h = block(h, lat[level])
            feats.append(h)
        return feats

    def site_tokens(self, feats: list[Tensor], levels: SparseLevels) -> Tensor:
        """(S_0, dim): each pixel's features at every level, fused."""
        parts, idx = [feats[0]], None
        for level in range(1, len(feats)):
            parent = levels.links[level - 1][0]
            idx = parent if idx is None else parent[idx]
            parts.append(feats[level][idx])
        return self.token(torch.cat(parts, -1))

    def encode_levels(self, x: Tensor, pos: Tensor, batch: Tensor, num_events: int) -> tuple[Tensor, Tensor, SparseLevels]:
        """:meth:`forward` and the lattices it built."""
        levels = self.sparse_levels(pos, batch)
        tokens = self.site_tokens(self.features(x, levels), levels)
        event = levels.lattices[0].event
        pooled = torch.cat([global_mean_pool(tokens, event, num_events), _max_per_event(tokens, event, num_events)], -1)
        return tokens[levels.site], self.latent(pooled), levels

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        b, num_events = batch_vector(batch)
        tokens, pooled, _ = self.encode_levels(batch.x, batch.pos, b, num_events)
        return tokens, pooled


class SparseConvDecoder(nn.Module):
    r"""Generative sparse decoder: from the coarsest occupied cells back to the occupied pixels.

    The sparse latent is the node tokens averaged over each coarsest-level cell, squeezed to
    ``bottleneck`` channels, plus the pooled embedding. Each level up applies a
    :class:`SparseConvTranspose2d` to every child of the current sites (``stride^2``
    candidates per site), scores each candidate's occupancy (a logit), keeps the occupied
    ones and runs residual blocks there; the last level predicts the standardised channel
    values. Training keeps the true occupied sites (teacher forcing, as in generative
    sparse networks: Gwak et al., arXiv:2006.12356); generation keeps the candidates with
    logit > 0. The coarsest occupied cells themselves are given (an occupancy map
    ``stride ** levels`` times coarser than the image).

    Args:
        channels: the encoder's channels per level.
        dim: token and pooled embedding size.
        bottleneck: latent channels per coarsest site.
        num_features: channel values F to predict.
        stride, kernel_size, blocks, algorithm: as the encoder.

    Shapes:
        tokens: (N, dim), pooled: (B, dim) -> values (S_0, F), occupancy logits [(S_l * s^2,)]
    """

    def __init__(
        self, channels, dim: int, bottleneck: int, num_features: int, stride: int, kernel_size: int, blocks: int,
        algorithm: str = "rules",
    ) -> None:
        super().__init__()
        self.stride = stride
        top = channels[-1]
        self.squeeze = nn.Linear(dim, bottleneck)
        self.z_proj = nn.Linear(dim, bottleneck)
        self.expand = nn.Linear(bottleneck, top)
        ups = list(zip(channels[::-1][:-1], channels[::-1][1:]))  # (coarse C, fine C), coarsest first
        self.up = nn.ModuleList(SparseConvTranspose2d(a, b, stride, bias=False) for a, b in ups)
        self.up_bn = nn.ModuleList(nn.BatchNorm1d(b) for _, b in ups)
        self.occupancy = nn.ModuleList(nn.Linear(b, 1) for _, b in ups)
        self.blocks = nn.ModuleList(
            nn.ModuleList(SparseResBlock(b, kernel_size, algorithm=algorithm) for _ in range(blocks)) for _, b in ups
        )
        self.values = nn.Linear(channels[0], num_features)

    def start(self, tokens: Tensor, pooled: Tensor, levels: SparseLevels) -> Tensor:
        """(S_L, C_L) features at the coarsest sites."""
        top = levels.lattices[-1]
        cell = scatter(tokens, levels.node_to_level(len(levels.lattices) - 1), dim=0, dim_size=top.num_sites, reduce="mean")
        return self.expand(F.gelu(self.squeeze(cell) + self.z_proj(pooled)[top.event]))

    def _up(self, i: int, h: Tensor, lattice: SparseLattice) -> tuple[Tensor, Tensor]:
        cand = torch.relu(self.up_bn[i](self.up[i](h, lattice)))  # every child of every site
        return cand, self.occupancy[i](cand).squeeze(-1)

    def forward(self, tokens: Tensor, pooled: Tensor, levels: SparseLevels) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Teacher-forced: values (S_0, F) at the true pixels, and per level up the candidates'
        occupancy logits and targets (is the candidate an occupied site)."""
        h = self.start(tokens, pooled, levels)
        ss = self.stride**2
        logits, targets = [], []
        for i in range(len(self.up)):
            coarse, fine = levels.lattices[-1 - i], levels.lattices[-2 - i]
            cand, logit = self._up(i, h, coarse)
            logits.append(logit)
            targets.append(fine.find(coarse.children_keys(self.stride).view(-1)) < fine.num_sites)
            parent, offset = levels.links[-1 - i]
            h = cand[parent * ss + offset]
            for block in self.blocks[i]:
                h = block(h, fine)
        return self.values(h), logits, targets

    def generate(self, tokens: Tensor, pooled: Tensor, levels: SparseLevels) -> tuple[Tensor, SparseLattice]:
        """Values (S', F) at the generated pixels and their lattice (candidates with logit > 0)."""
        h = self.start(tokens, pooled, levels)
        lattice = levels.lattices[-1]
        for i in range(len(self.up)):
            cand, logit = self._up(i, h, lattice)
            keep = (logit > 0).nonzero().view(-1)
            keys = lattice.children_keys(self.stride).view(-1)[keep]
            keys, order = torch.sort(keys)
            lattice, h = SparseLattice(keys, lattice.col_period * self.stride), cand[keep[order]]
            for block in self.blocks[i]:
                h = block(h, lattice)
        return self.values(h), lattice


@register_model("sparse_conv_ae")
class SparseConvAutoencoder(AutoencoderModel):
    """Sparse-convolution autoencoder: sparse ResNet encoder, generative sparse decoder back to the occupied pixels.

    The encoder (:class:`SparseConvEncoder`) runs submanifold sparse convolutions on the
    occupied pixels and strided ones down to coarser lattices; its node tokens and pooled
    embedding feed :class:`SparseConvDecoder`, which upsamples with sparse transposed
    convolutions through every child of the coarser sites, predicting which pixels are
    occupied and, at the occupied ones, their channel values. Loss: mean squared error of the
    standardised values at the occupied pixels + ``occupancy_weight`` x the binary cross
    entropy of the candidates' occupancy (averaged over levels).

    Why this decoder rather than a FoldingNet grid with a Chamfer loss: the candidates are
    exact lattice pixels, so occupancy and values are scored pixel by pixel (no matching, no
    fixed number of output points, cost linear in the occupied pixels), and the decoder reuses
    the encoder's lattices and hash. What it does not do: invent occupied cells at the
    coarsest level (those are given, see the decoder).

    Shapes:
        batch: PyG Batch with x (N, F), pos (N, 2) -> encode: (N, dim), (B, dim);
        decode: values (S_0, F), occupancy logits and targets per level;
        predict: ``{"recon_error": (B, F)}``.
    """

    config_class = SparseConvConfig
    reconstructs = "sparse_conv"

    def __init__(self, info: DatasetInfo, config: SparseConvConfig | None = None) -> None:
        super().__init__(info, config or SparseConvConfig())
        c = self.config
        self.encoder = SparseConvEncoder(info, c)
        self.decoder = SparseConvDecoder(
            c.channels, c.dim, c.bottleneck, info.num_node_features, c.stride, c.kernel_size, c.decoder_blocks,
            c.conv_algorithm,
        )

    def _encode_levels(self, batch) -> tuple[Tensor, Tensor, SparseLevels]:
        b, num_events = batch_vector(batch)
        return self.encoder.encode_levels(batch.x, batch.pos, b, num_events)

    def decode(self, tokens: Tensor, pooled: Tensor, batch) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Teacher-forced decoding through the batch's sites: standardised values at its
        occupied pixels (S_0, F, in lattice order) and, per level up, the candidates'
        occupancy logits and targets."""
        return self.decoder(tokens, pooled, self.encoder.sparse_levels(batch.pos, batch_vector(batch)[0]))

    def recon_terms(self, batch, target: Tensor | None = None) -> dict[str, Tensor]:
        """``{"values": .., "occupancy": ..}`` (before weighting) and ``squared`` (S_0, F) errors."""
        tokens, pooled, levels = self._encode_levels(batch)
        values, logits, targets = self.decoder(tokens, pooled, levels)
        true = self.encoder.norm(self.encoder.site_values(batch.x if target is None else target, levels))
        squared = (values.float() - true.float()).square()
        occupancy = torch.stack(
            [F.binary_cross_entropy_with_logits(lg.float(), tg.float()) for lg, tg in zip(logits, targets)]
        ).mean()
        return {"values": squared.mean(), "occupancy": occupancy, "squared": squared, "event": levels.lattices[0].event}

    def recon_loss(self, batch, target: Tensor | None = None) -> Tensor:
        """``values + occupancy_weight * occupancy`` (see class docstring); ``target`` replaces ``batch.x``."""
        terms = self.recon_terms(batch, target)
        return terms["values"] + self.config.occupancy_weight * terms["occupancy"]

    @torch.no_grad()
    def reconstruct(self, batch) -> Reconstruction:
        """Generated pixels of every event (occupancy logit > 0) with their values (dataset units)."""
        tokens, pooled, levels = self._encode_levels(batch)
        values, lattice = self.decoder.generate(tokens, pooled, levels)
        _, num_events = batch_vector(batch)
        pos = self.encoder.site_positions(lattice)
        return Reconstruction(pos, self.encoder.norm.inverse(values.float()), lattice.event, num_events)

    def loss(self, batch, stage: Stage = "pretrain") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        terms = self.recon_terms(batch)
        loss = terms["values"] + self.config.occupancy_weight * terms["occupancy"]
        logs = torch.stack([loss.detach(), terms["values"].detach(), terms["occupancy"].detach()]).tolist()
        return loss, dict(zip(("recon", "values", "occupancy"), logs))

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``recon_error (B, F)``: per event and channel, mean squared standardised error of the
        values at its occupied pixels (teacher-forced decoding)."""
        terms = self.recon_terms(batch)
        _, num_events = batch_vector(batch)
        return {"recon_error": scatter(terms["squared"], terms["event"], dim=0, dim_size=num_events, reduce="mean")}
