"""AdamW parameter groups and the warmup + cosine schedule, against values computed by hand."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from graphevent.train.optim import WarmupCosine, build_optimizer, build_scheduler


def test_warmup_cosine_values():
    f = WarmupCosine(warmup_steps=2, total_steps=10, min_ratio=0.1)
    assert [f(0), f(1)] == pytest.approx([1 / 3, 2 / 3])
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # halfway: 0.55
    assert f(10) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)


def test_schedule_for_run_counts_optimizer_steps():
    f = WarmupCosine.for_run(steps_per_epoch=4, epochs=3, warmup_epochs=0.5, min_ratio=0.0)
    assert (f.warmup_steps, f.total_steps) == (2, 12)


def test_decay_only_on_matrices_and_frozen_left_out():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].requires_grad_(False)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert sorted(tuple(p.shape) for p in no_decay["params"]) == [(4,), (4,), (4,)]


def test_scheduler_state_loads_with_weights_only():
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, 0.1, 0.0)
    sched = build_scheduler(opt, steps_per_epoch=5, epochs=2, warmup_epochs=1, min_lr_ratio=0.0)
    for _ in range(3):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["last_epoch"] == 3
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 4 / 6)
