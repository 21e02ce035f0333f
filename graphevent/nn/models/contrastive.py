"""Contrastive pretraining of an encoder with physics augmentations (JetCLR-style, NT-Xent)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.layers.jet_augment import JetAugment, check_augment
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.models.base import Backbone, BackbonePretrainer, OneEncoderConfig, Stage
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class ContrastiveConfig(OneEncoderConfig):
    """Keyword arguments of ``contrastive``: the encoder and its section
    (:class:`~graphevent.nn.models.base.OneEncoderConfig`), and:

    Args:
        proj_hidden: hidden width of the projection head.
        proj_dim: output size of the projection head (the NT-Xent space).
        temperature: NT-Xent temperature.
        rotate: rotate each view by a random angle about its jet axis.
        translate: std of the per-view (eta, phi) shift.
        smear: relative std of the per-node energy smearing.
        split_prob: probability that a node is split collinearly in a view.
    """

    proj_hidden: int = 128
    proj_dim: int = 64
    temperature: float = 0.1
    rotate: bool = True
    translate: float = 0.02
    smear: float = 0.1
    split_prob: float = 0.1

    def validate(self, where: str = "model") -> None:
        require_at_least_one(self, where, "proj_hidden", "proj_dim")
        if not self.temperature > 0:
            raise ConfigError(f"{where}.temperature: {self.temperature}; expected > 0")
        check_augment(where, self.translate, self.smear, self.split_prob)


def nt_xent(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    r"""NT-Xent (SimCLR, arXiv:2002.05709): for each of the ``2B`` projections, cross entropy
    of its positive (the other view of its event) against the other ``2B - 2``, on cosine
    similarities divided by ``temperature``.

    Shapes:
        a: (B, P), b: (B, P) -> scalar
    """
    z = nn.functional.normalize(torch.cat([a, b]).float(), dim=1)
    n = a.size(0)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return nn.functional.cross_entropy(sim, target)


@register_model("contrastive")
class ContrastivePretrainer(BackbonePretrainer):
    r"""Contrastive pretraining of any registered encoder (JetCLR).

    Dillon et al., "Symmetries, safety, and self-supervision", arXiv:2108.04253: two random
    views of every jet (:class:`~graphevent.nn.layers.jet_augment.JetAugment`: rotation about
    the jet axis, translation, energy smearing, collinear splits) are encoded, their pooled
    embeddings pass a projection head :math:`g`, and NT-Xent (:func:`nt_xent`) pulls the two
    views of a jet together and pushes other jets away. Labels are never read. The views get
    new kNN graphs (split nodes change the graph; the ``sparse_conv`` encoder bins the moved
    nodes into pixels again). Fine-tune the encoder with ``multitask`` and ``--init-from``
    (the encoder keeps its name).

    Args:
        info: dataset description (``feature_transforms`` tell the augmentations how to undo
            the stored ``log1p``).
        config: :class:`ContrastiveConfig`.

    Shapes:
        batch: x (N, F), pos (N, 2) -> encode: (N, D), (B, D); loss: scalar;
        predict: ``{"embedding": (B, D)}``
    """

    config_class = ContrastiveConfig

    def __init__(self, info: DatasetInfo, config: ContrastiveConfig | None = None) -> None:
        super().__init__(info, config or ContrastiveConfig())
        c = self.config
        self.backbone = Backbone(info, c.encoder, c.encoder_configs.get(c.encoder))
        dim = self.dim
        self.projector = MLP(dim, [c.proj_hidden], c.proj_dim)
        self.augment = JetAugment.for_dataset(info, rotate=c.rotate, translate=c.translate, smear=c.smear,
                                              split_prob=c.split_prob)

    def view(self, batch, generator: torch.Generator | None = None) -> Batch:
        """One augmented copy of the events (new tensors, no graph: encoders rebuild it)."""
        if not self.augment.knows_transforms and (self.config.smear > 0 or self.config.split_prob > 0):
            raise ConfigError(
                "model: smear and split_prob need the dataset's channel transforms, which its manifest does not "
                "record; set model.smear=0 and model.split_prob=0 or preprocess the data again"
            )
        return self.augment.view(batch, generator)

    def contrastive_loss(self, batch, generator: torch.Generator | None = None) -> Tensor:
        """NT-Xent between the projections of two views of each event."""
        a = self.projector(self.encode(self.view(batch, generator))[1])
        b = self.projector(self.encode(self.view(batch, generator))[1])
        return nt_xent(a, b, self.config.temperature)

    def loss(self, batch, stage: Stage = "pretrain") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        loss = self.contrastive_loss(batch)
        return loss, {"nt_xent": float(loss.detach())}

