"""AdamW parameter groups and the warmup + cosine schedule, against values computed by hand."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from graphevent.train.optim import WarmupCosine, build_optimizer, build_scheduler, encoder_depths


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


class _WithEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(3, 4)
        self.head = nn.Linear(4, 1)

    def encoder_modules(self):
        return {"enc": self.enc}


def test_encoder_groups_get_scaled_and_held_learning_rate():
    model = _WithEncoder()
    opt = build_optimizer(model, lr=0.1, weight_decay=0.0, split_encoders=True)
    assert [(g["encoder"], len(g["params"])) for g in opt.param_groups] == [(False, 1), (False, 1), (True, 1), (True, 1)]
    assert opt.param_groups[2]["params"][0] is model.enc.weight
    sched = build_scheduler(opt, steps_per_epoch=4, epochs=3, warmup_epochs=0, min_lr_ratio=0.0,
                            encoder_lr_scale=0.1, encoder_frozen_epochs=1)
    lrs = []
    for _ in range(6):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    cos = lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * s / 12))  # noqa: E731
    assert [r[0] for r in lrs] == pytest.approx([cos(s) for s in range(6)])
    assert [r[2] for r in lrs] == pytest.approx([0, 0, 0, 0, 0.1 * cos(4), 0.1 * cos(5)])


def test_held_encoder_weights_do_not_move():
    torch.manual_seed(0)
    model = _WithEncoder()
    before = model.enc.weight.detach().clone()
    opt = build_optimizer(model, lr=0.1, weight_decay=0.05, split_encoders=True)
    sched = build_scheduler(opt, 2, 2, 0, 0.0, encoder_frozen_epochs=1)
    for _ in range(2):
        opt.zero_grad()
        model.head(model.enc(torch.randn(8, 3))).square().mean().backward()
        opt.step()
        sched.step()
    assert torch.equal(model.enc.weight, before)
    opt.zero_grad()
    model.head(model.enc(torch.randn(8, 3))).square().mean().backward()
    opt.step()
    assert not torch.equal(model.enc.weight, before)


class _Layered(nn.Module):
    """An encoder as the registered ones are laid out: embedding, a list of layers, an output norm."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.out_norm = nn.LayerNorm(4)


def test_layer_decay_scales_each_encoder_level_below_the_top():
    model = _WithEncoder()
    model.enc = _Layered()
    depth = encoder_depths(model.enc)
    assert [depth[id(m.weight)] for m in (model.enc.embed, *model.enc.layers, model.enc.out_norm)] == [4, 3, 2, 1, 0]
    opt = build_optimizer(model, lr=0.1, weight_decay=0.01, split_encoders=True, layer_decay=0.5)
    scales = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    assert [scales[id(m.bias)] for m in (model.enc.embed, *model.enc.layers, model.enc.out_norm)] == [0.0625, 0.125, 0.25, 0.5, 1.0]
    assert scales[id(model.head.weight)] == 1.0 and not opt.param_groups[0]["encoder"]
    assert {g["weight_decay"] for g in opt.param_groups if g["params"][0].ndim == 1} == {0.0}
    build_scheduler(opt, steps_per_epoch=2, epochs=2, warmup_epochs=0, min_lr_ratio=0.0, encoder_lr_scale=0.1)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr[id(model.head.weight)] == pytest.approx(0.1)
    assert [lr[id(m.weight)] for m in (model.enc.embed, model.enc.layers[2])] == pytest.approx([0.1 * 0.1 * 0.0625, 0.1 * 0.1 * 0.5])


def test_the_registered_encoders_decay_from_their_output_down_to_their_embeddings():
    from graphevent.data.info import DatasetInfo
    from graphevent.nn.registry import build_encoder

    info = DatasetInfo(node_features=["tracks", "ecal", "hcal"], classes=["quark", "gluon"], k=8, pixel_size=(0.1, 0.1))
    enc = build_encoder("masked_gt", info)  # shipped size: depth 4
    depth = encoder_depths(enc)
    assert depth[id(enc.out_norm.weight)] == 0 and [{depth[id(p)] for p in layer.parameters()} for layer in enc.layers] == [{4}, {3}, {2}, {1}]
    assert {depth[id(p)] for p in (*enc.embed.parameters(), *enc.edge_embed.parameters())} == {5}
