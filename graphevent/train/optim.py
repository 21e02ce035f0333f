"""AdamW with decoupled weight decay on weight matrices only, and a warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``.

    Weight decay applies to parameters with two or more dimensions (linear/conv weights);
    biases, norm scales and embeddings of one dimension are not decayed. Frozen parameters
    (``requires_grad=False``, e.g. with ``--freeze-encoder``) are left out.
    """
    decay, no_decay = [], []
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)


class WarmupCosine:
    """Learning-rate factor: linear warmup from ~0 to 1, then cosine decay to ``min_ratio``.

    Args:
        warmup_steps: optimizer steps of linear warmup (0 = none).
        total_steps: optimizer steps of the whole run.
        min_ratio: final factor (lr_final = lr * min_ratio).

    A plain object with numeric attributes, so ``LambdaLR.state_dict()`` stays loadable
    with ``torch.load(weights_only=True)``.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    @classmethod
    def for_run(cls, steps_per_epoch: int, epochs: int, warmup_epochs: float, min_ratio: float) -> "WarmupCosine":
        """The schedule of a run of ``epochs`` epochs of ``steps_per_epoch`` optimizer steps."""
        total = max(1, steps_per_epoch * epochs)
        warmup = min(int(round(warmup_epochs * steps_per_epoch)), total - 1)
        return cls(warmup, total, min_ratio)

    def __repr__(self) -> str:
        return f"WarmupCosine(warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, min_ratio={self.min_ratio})"


def build_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float, min_lr_ratio: float
) -> LambdaLR:
    """Per-optimizer-step LambdaLR with :class:`WarmupCosine` over ``epochs * steps_per_epoch`` steps."""
    return LambdaLR(optimizer, WarmupCosine.for_run(steps_per_epoch, epochs, warmup_epochs, min_lr_ratio))
