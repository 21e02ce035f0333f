"""Masked latent prediction against an EMA teacher (data2vec / I-JEPA style) for the ``masked_gt`` encoder."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.models.base import Backbone, BackbonePretrainer, Stage
from graphevent.nn.models.masked_gt_ae import MaskedGTAutoencoder, MaskedGTConfig, MaskedGTDecoder, mask_nodes
from graphevent.nn.registry import register_model


@dataclass(frozen=True)
class MaskedLatentConfig:
    """Keyword arguments of ``masked_gt_latent``.

    Args:
        target_layers: the teacher's top layers averaged into a target (data2vec: top K of L);
            at most ``masked_gt.depth``.
        ema_decay: EMA decay of the teacher at the first optimizer step.
        ema_end_decay: EMA decay at the last step (linear in between, data2vec's schedule:
            the teacher follows the student closely early on, then settles).
        recon_weight: weight of ``masked_gt_ae``'s value reconstruction added to the latent
            loss (same hidden nodes, same student pass, its own light decoder); 0 = none.
        masked_gt: the ``masked_gt`` encoder's settings (as in ``masked_gt_ae``); its ``mask_*``
            fields choose the hidden nodes and its ``decoder_*`` fields size the predictor.
    """

    target_layers: int = 2
    ema_decay: float = 0.99
    ema_end_decay: float = 0.999
    recon_weight: float = 0.0
    masked_gt: MaskedGTConfig = field(default_factory=MaskedGTConfig)

    def validate(self, where: str = "model") -> None:
        if not 1 <= self.target_layers <= self.masked_gt.depth:
            raise ConfigError(
                f"{where}.target_layers: {self.target_layers}; expected 1 .. masked_gt.depth ({self.masked_gt.depth})"
            )
        for key in ("ema_decay", "ema_end_decay"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)}; expected a decay in [0, 1]")
        if not self.recon_weight >= 0.0:
            raise ConfigError(f"{where}.recon_weight: {self.recon_weight}; expected >= 0 (0 = latent loss only)")


def latent_targets(states: list[Tensor], top: int) -> Tensor:
    r"""data2vec targets: the mean of the top ``top`` layer outputs, each layer-normalised
    (no affine), then layer-normalised again:
    :math:`y_i = \mathrm{LN}(\tfrac1K \sum_{l > L-K} \mathrm{LN}(h^l_i))`.
    Normalising every token keeps the targets from collapsing to one scale or to zero.

    Shapes:
        states: L tensors (N, D) -> (N, D) float32
    """
    d = states[-1].size(-1)
    mean = torch.stack([F.layer_norm(h.float(), (d,)) for h in states[-top:]]).mean(0)
    return F.layer_norm(mean, (d,))


@register_model("masked_gt_latent")
class MaskedLatentPretrainer(BackbonePretrainer):
    r"""Masked prediction in latent space against an EMA teacher, for the ``masked_gt`` encoder.

    data2vec (Baevski et al., arXiv:2202.03555) and I-JEPA (Assran et al., arXiv:2301.08243)
    on the kNN graph of each event. The student encoder (``masked_gt``, the one fine-tuned
    later) sees only the visible nodes, as in ``masked_gt_ae``; a light predictor (the
    ``masked_gt_ae`` decoder with ``dim``-sized outputs: mask tokens at the hidden positions,
    over the full graph) predicts, at every hidden node, the teacher's representation of
    that node. The teacher is an exponential moving average of the student that sees the
    whole event; its targets are :func:`latent_targets` (top layers, layer-normalised). The
    loss is the mean squared error over hidden nodes only. The teacher receives no gradient
    and is updated after every optimizer step (:meth:`after_optimizer_step`), its decay
    going linearly from ``ema_decay`` to ``ema_end_decay`` over the run.

    Unlike a reconstruction target, the teacher's token of a hidden node summarises its
    neighbourhood and the event (global attention layers), so the task cannot be solved from the
    node's neighbours' values alone. Fine-tune the student with ``multitask`` and
    ``--init-from`` (the encoder keeps its name ``masked_gt``). Labels are never read.

    Shapes:
        batch: x (N, F), pos (N, 2) -> encode: (N, dim), (B, dim); loss: scalar;
        predict: ``{"embedding": (B, dim)}``
    """

    config_class = MaskedLatentConfig

    def __init__(self, info: DatasetInfo, config: MaskedLatentConfig | None = None) -> None:
        super().__init__(info, config or MaskedLatentConfig())
        c = self.config.masked_gt
        # the student: the masked_gt encoder, with masked_gt_ae's decoder when its loss is added
        self.backbone = MaskedGTAutoencoder(info, c) if self.config.recon_weight > 0 else Backbone(info, "masked_gt", c)
        self.predictor = MaskedGTDecoder(info, c, out_channels=c.dim)
        self.teacher = copy.deepcopy(self.backbone.encoder).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "MaskedLatentPretrainer":
        super().train(mode)
        self.teacher.eval()  # the teacher only makes targets (no dropout)
        return self

    def mask_nodes(self, batch, generator: torch.Generator | None = None) -> Tensor:
        """Boolean ``(N,)``: which nodes to hide (:func:`~graphevent.nn.models.masked_gt_ae.mask_nodes`)."""
        return mask_nodes(batch, self.config.masked_gt, self.training, generator, self.info.periods)

    # ------------------------------------------------------------------ teacher
    def ema_decay_at(self, step: int, total_steps: int) -> float:
        """The teacher's decay after optimizer step ``step`` (1 .. ``total_steps``)."""
        c = self.config
        t = min(max(step - 1, 0) / max(total_steps - 1, 1), 1.0)
        return c.ema_decay + (c.ema_end_decay - c.ema_decay) * t

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """teacher <- decay * teacher + (1 - decay) * student (parameters; buffers copied)."""
        decay = self.ema_decay_at(step, total_steps)
        student = self.backbone.encoder
        for t, s in zip(self.teacher.parameters(), student.parameters()):
            t.lerp_(s.detach(), 1.0 - decay)
        for t, s in zip(self.teacher.buffers(), student.buffers()):
            t.copy_(s)

    @torch.no_grad()
    def targets(self, batch) -> Tensor:
        """The teacher's :func:`latent_targets` of every node of the full events ``(N, dim)``."""
        return latent_targets(self.teacher.states(batch), self.config.target_layers)

    # ------------------------------------------------------------------ objective
    def latent_loss(self, batch, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean squared error between predicted and teacher tokens over hidden nodes, and the
        targets' spread over hidden nodes (mean per-channel std: near 0 means collapse).

        Args:
            batch: the events.
            hidden: (N,) bool mask to use (default: the ``masked_gt`` masking).
        """
        losses = self.objectives(batch, hidden)
        return losses["latent"], losses["target_std"]

    def objectives(self, batch, hidden: Tensor | None = None) -> dict[str, Tensor]:
        """``latent`` (MSE to the teacher's tokens over hidden nodes), ``target_std`` (no gradient)
        and, with ``recon_weight > 0``, ``recon`` (``masked_gt_ae``'s loss on the same hidden nodes)."""
        hidden = self.mask_nodes(batch) if hidden is None else hidden
        target = self.targets(batch)
        tokens, pooled = self.backbone.encode(batch, visible=~hidden)
        pred = self.predictor(tokens, ~hidden, batch)
        count = hidden.sum().clamp(min=1)
        err = (pred.float() - target).square() * hidden[:, None]
        out = {"latent": err.sum() / (count * err.size(1))}
        with torch.no_grad():
            mean = (target * hidden[:, None]).sum(0) / count
            out["target_std"] = (((target - mean).square() * hidden[:, None]).sum(0) / count).sqrt().mean()
        if self.config.recon_weight > 0:
            values = self.backbone.decode(tokens, pooled, batch, hidden)
            rerr = (values.float() - self.backbone.encoder.norm(batch.x).float()).square() * hidden[:, None]
            out["recon"] = rerr.sum() / (count * rerr.size(1))
        return out

    def loss(self, batch, stage: Stage = "pretrain") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        losses = self.objectives(batch)
        total = losses["latent"] + self.config.recon_weight * losses["recon"] if "recon" in losses else losses["latent"]
        values = torch.stack([v.detach() for v in losses.values()]).tolist()
        return total, dict(zip(losses, values))
