"""AdamW with decoupled weight decay on weight matrices only, and a warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
    split_encoders: bool = False,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``.

    Weight decay applies to parameters with two or more dimensions (linear/conv weights);
    biases, norm scales and embeddings of one dimension are not decayed. Frozen parameters
    (``requires_grad=False``, e.g. with ``--freeze-encoder``) are left out. With
    ``split_encoders`` the parameters of ``model.encoder_modules()`` get groups of their own,
    marked ``"encoder": True``, so the schedule can give them another learning rate
    (:func:`group_schedules`).
    """
    encoder_ids: set[int] = set()
    if split_encoders and hasattr(model, "encoder_modules"):
        encoder_ids = {id(p) for enc in model.encoder_modules().values() for p in enc.parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if not p.requires_grad:
            continue
        groups.setdefault((id(p) in encoder_ids, p.ndim >= 2), []).append(p)
    order = [(False, True), (False, False), (True, True), (True, False)]
    param_groups = [
        {"params": groups[key], "weight_decay": weight_decay if key[1] else 0.0, "encoder": key[0]}
        for key in order if groups.get(key)
    ]
    return torch.optim.AdamW(param_groups, lr=lr, betas=betas)


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
    :func:`build_optimizer`) are scaled by ``encoder_lr_scale`` and held at 0 for the first
    ``encoder_frozen_epochs`` (the heads train on a fixed encoder first), the others follow the
    plain schedule."""
    return [
        WarmupCosine.for_run(steps_per_epoch, epochs, warmup_epochs, min_lr_ratio, encoder_lr_scale, encoder_frozen_epochs)
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
