"""AdamW with decoupled weight decay on weight matrices only, and a warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
    split_encoders: bool = False, layer_decay: float = 1.0,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``.

    Weight decay applies to parameters with two or more dimensions (linear/conv weights);
    biases, norm scales and embeddings of one dimension are not decayed. Frozen parameters
    (``requires_grad=False``, e.g. with ``--freeze-encoder``) are left out. With
    ``split_encoders`` the parameters of ``model.encoder_modules()`` get groups of their own,
    marked ``"encoder": True``, so the schedule can give them another learning rate
    (:func:`group_schedules`); each such group also holds ``"lr_scale"``, ``layer_decay`` to the
    power of how far below the encoder's top its parameters sit (:func:`encoder_depths`: the
    layer-wise learning-rate decay of BEiT-style fine-tuning; 1 for every group at the default).
    """
    depth: dict[int, int] = {}
    if split_encoders and hasattr(model, "encoder_modules"):
        depth = {k: v for enc in model.encoder_modules().values() for k, v in encoder_depths(enc).items()}
    groups: dict[tuple[bool, int, bool], list[nn.Parameter]] = {}
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            groups.setdefault((id(p) in depth, depth.get(id(p), 0), p.ndim >= 2), []).append(p)
    order = sorted(groups, key=lambda k: (k[0], k[1], not k[2]))  # heads first, then encoders from their top down
    param_groups = [{"params": groups[key], "weight_decay": weight_decay if key[2] else 0.0, "encoder": key[0],
                     "lr_scale": layer_decay ** key[1]} for key in order]
    return torch.optim.AdamW(param_groups, lr=lr, betas=betas)


def encoder_depths(encoder: nn.Module) -> dict[int, int]:
    """``id(parameter) -> levels below the top`` of an encoder, from the order its children are
    registered in (the order of its forward): each element of a child ``ModuleList`` (a layer)
    is a level; the other children before the first list (input embeddings) are one level at
    the bottom, those after it (output norms and projections) one level at the top."""
    below, layers, above = [], [], []
    for _, m in encoder.named_children():
        if isinstance(m, nn.ModuleList):
            layers += [[layer] for layer in m]
        else:
            (above if layers else below).append(m)
    levels = [lv for lv in (below, *layers, above) if lv]
    out = {id(p): len(levels) - 1 - i for i, mods in enumerate(levels) for m in mods for p in m.parameters()}
    return out | {id(p): 0 for p in encoder.parameters(recurse=False)}


class WarmupCosine:
    """Learning-rate factor: linear warmup from ~0 to 1, then cosine decay to ``min_ratio``.

    Args:
        warmup_steps: optimizer steps of linear warmup (0 = none).
        total_steps: optimizer steps of the whole run.
        min_ratio: final factor (lr_final = lr * min_ratio).

    A plain object with numeric attributes, so ``LambdaLR.state_dict()`` stays loadable
    with ``torch.load(weights_only=True)``.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0, scale: float = 1.0,
                 hold_steps: int = 0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_ratio = float(min_ratio)
        self.scale = float(scale)
        self.hold_steps = int(hold_steps)

    def __call__(self, step: int) -> float:
        if step < self.hold_steps:
            return 0.0
        return self.scale * self._base(step)

    def _base(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    @classmethod
    def for_run(cls, steps_per_epoch: int, epochs: int, warmup_epochs: float, min_ratio: float, scale: float = 1.0,
                hold_epochs: float = 0.0) -> "WarmupCosine":
        """The schedule of a run of ``epochs`` epochs of ``steps_per_epoch`` optimizer steps."""
        total = max(1, steps_per_epoch * epochs)
        warmup = min(int(round(warmup_epochs * steps_per_epoch)), total - 1)
        return cls(warmup, total, min_ratio, scale, int(round(hold_epochs * steps_per_epoch)))

    def __repr__(self) -> str:
        return (f"WarmupCosine(warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, min_ratio={self.min_ratio}, "
                f"scale={self.scale}, hold_steps={self.hold_steps})")


def group_schedules(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float, min_lr_ratio: float,
    encoder_lr_scale: float = 1.0, encoder_frozen_epochs: float = 0.0,
) -> list[WarmupCosine]:
    """One :class:`WarmupCosine` per parameter group: encoder groups (``"encoder": True``, see
    :func:`build_optimizer`) are scaled by ``encoder_lr_scale`` times their ``lr_scale`` and held
    at 0 for the first ``encoder_frozen_epochs`` (the heads train on a fixed encoder first), the
    others follow the plain schedule."""
    return [
        WarmupCosine.for_run(steps_per_epoch, epochs, warmup_epochs, min_lr_ratio, encoder_lr_scale * g.get("lr_scale", 1.0),
                             encoder_frozen_epochs)
        if g.get("encoder") else WarmupCosine.for_run(steps_per_epoch, epochs, warmup_epochs, min_lr_ratio)
        for g in optimizer.param_groups
    ]


def build_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float, min_lr_ratio: float,
    encoder_lr_scale: float = 1.0, encoder_frozen_epochs: float = 0.0,
) -> LambdaLR:
    """Per-optimizer-step LambdaLR with :class:`WarmupCosine` over ``epochs * steps_per_epoch``
    steps, per parameter group (:func:`group_schedules`)."""
    return LambdaLR(optimizer, group_schedules(
        optimizer, steps_per_epoch, epochs, warmup_epochs, min_lr_ratio, encoder_lr_scale, encoder_frozen_epochs
    ))
