"""Submanifold sparse-convolution autoencoder: sparse ResNet encoder, generative sparse transposed-convolution decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.encoders.sparse_conv import SparseConvEncoder, SparseConvEncoderConfig, SparseLevels
from graphevent.nn.layers.sparse_conv_transpose import SparseConvTranspose2d
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.layers.sparse_res_block import SparseResBlock
from graphevent.nn.models.base import AutoencoderModel
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class SparseConvConfig(SparseConvEncoderConfig):
    """Keyword arguments of ``sparse_conv_ae``: the ``sparse_conv`` encoder's
    (:class:`~graphevent.nn.encoders.sparse_conv.SparseConvEncoderConfig`) and the decoder's
    and loss's. It is also the ``sparse_conv`` section of the models that compose the encoder.

    Args:
        bottleneck: channels per coarsest-level site handed to the decoder (with the pooled
            embedding): the sparse latent.
        decoder_blocks: residual blocks per level in the decoder.
        occupancy_weight: weight of the occupancy loss (binary cross entropy of which
            candidate pixels are occupied) next to the values' mean squared error.
    """

    bottleneck: int = 16
    decoder_blocks: int = 1
    occupancy_weight: float = 1.0

    def validate(self, where: str = "model") -> None:
        super().validate(where)
        require_at_least_one(self, where, "bottleneck", "decoder_blocks")
        if self.occupancy_weight < 0:
            raise ConfigError(f"{where}.occupancy_weight: {self.occupancy_weight}; expected >= 0")


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

    The encoder (:class:`~graphevent.nn.encoders.sparse_conv.SparseConvEncoder`) runs
    submanifold sparse convolutions on the occupied pixels and strided ones down to coarser
    lattices; its node tokens and pooled
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
    recon_weights = {"values": None, "occupancy": "occupancy_weight"}

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

    @torch.no_grad()
    def reconstruct(self, batch) -> Reconstruction:
        """Generated pixels of every event (occupancy logit > 0) with their values (dataset units)."""
        tokens, pooled, levels = self._encode_levels(batch)
        values, lattice = self.decoder.generate(tokens, pooled, levels)
        _, num_events = batch_vector(batch)
        pos = self.encoder.site_positions(lattice)
        return Reconstruction(pos, self.encoder.norm.inverse(values.float()), lattice.event, num_events)

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``recon_error (B, F)``: per event and channel, mean squared standardised error of the
        values at its occupied pixels (teacher-forced decoding)."""
        terms = self.recon_terms(batch)
        _, num_events = batch_vector(batch)
        return {"recon_error": scatter(terms["squared"], terms["event"], dim=0, dim_size=num_events, reduce="mean")}
