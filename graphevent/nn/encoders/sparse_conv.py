"""The ``sparse_conv`` encoder: a sparse ResNet of submanifold convolutions on the occupied pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.periodic import event_frame
from graphevent.nn.layers.pixels import pixel_coords
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.layers.sparse_res_block import SparseResBlock
from graphevent.nn.layers.sparse_strided_conv import SparseStridedConv2d
from graphevent.nn.layers.submanifold_conv import SubmanifoldConv2d
from graphevent.nn.registry import register_encoder


@dataclass(frozen=True)
class SparseConvEncoderConfig:
    """Settings of the ``sparse_conv`` encoder (``sparse_conv_ae``'s config derives from it).

    Args:
        channels: feature channels per lattice level, finest first; each further level is a
            strided sparse convolution (``stride``) down from the previous one, so
            ``len(channels) - 1`` downsamplings (at least 1).
        blocks: residual blocks per level.
        kernel_size: odd kernel of the submanifold convolutions.
        stride: downsampling factor between levels.
        dim: node token and pooled embedding size D.
        pos_scale: the site's (eta, phi) / pos_scale are input features next to the values
            (default 0.4, a typical jet radius).
        pixel_size: (eta, phi) pixel size of the lattice; unset: the dataset's image pixel
            size (needed for point datasets without image geometry).
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
    pos_scale: float = 0.4
    pixel_size: tuple[float, float] | None = None
    conv_algorithm: Literal["gather", "rules"] = "rules"

    def validate(self, where: str = "model") -> None:
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ConfigError(f"{where}.channels: {list(self.channels)}; expected at least 2 levels of sizes >= 1")
        require_at_least_one(self, where, "blocks", "dim")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: {self.kernel_size}; expected an odd size >= 1")
        if self.stride < 2:
            raise ConfigError(f"{where}.stride: {self.stride}; expected >= 2")
        if not self.pos_scale > 0:
            raise ConfigError(f"{where}.pos_scale: {self.pos_scale}; expected > 0")
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
        config: :class:`SparseConvEncoderConfig` (or one deriving from it, such as ``sparse_conv_ae``'s).

    Shapes:
        batch: x (N, F), pos (N, 2) -> tokens (N, dim), pooled (B, dim)
    """

    config_class = SparseConvEncoderConfig
    not_exportable = "its sparse convolutions hash the occupied pixels into lattices of data-dependent size"

    def __init__(self, info: DatasetInfo, config: SparseConvEncoderConfig) -> None:
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
