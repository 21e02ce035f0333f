"""masked_gt_latent: latent prediction against an EMA teacher (data2vec / I-JEPA style)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from nn_helpers import TINY, build_tiny, make_batch, make_events, tiny_info
from graphevent.nn.models.masked_gt_latent import latent_targets


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_teacher_gets_no_gradient_and_follows_the_student_by_ema_after_each_step():
    model = build_tiny("masked_gt_latent").train()
    teacher, student = model.teacher, model.backbone.encoder
    assert not any(p.requires_grad for p in teacher.parameters())
    start = _params(student)
    assert all(torch.equal(start[k], v) for k, v in _params(teacher).items())  # the teacher starts as the student
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss, logs = model.loss(make_batch(), "pretrain")
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    opt.step()
    moved = _params(student)
    assert any(not torch.equal(start[k], moved[k]) for k in start)
    before = _params(teacher)
    model.after_optimizer_step(1, 10)  # decay = ema_decay at the first step
    d = model.config.ema_decay
    after = _params(teacher)
    for k in start:
        torch.testing.assert_close(after[k], d * before[k] + (1 - d) * moved[k], atol=1e-6, rtol=1e-6)


def test_ema_decay_goes_linearly_from_start_to_end_over_the_run():
    model = build_tiny("masked_gt_latent", ema_decay=0.9, ema_end_decay=0.99)
    assert [model.ema_decay_at(s, 11) for s in (1, 6, 11, 20)] == pytest.approx([0.9, 0.945, 0.99, 0.99])
    assert model.ema_decay_at(1, 1) == pytest.approx(0.9)


def test_engine_updates_the_teacher_after_every_optimizer_step(monkeypatch):
    from graphevent.config.experiment import experiment_from_dict
    from graphevent.utils.distributed import DistContext
    from graphevent.train.engine import Trainer

    cfg = experiment_from_dict({"stage": "pretrain", "model": {"name": "masked_gt_latent", **TINY["masked_gt_latent"]},
                                "train": {"epochs": 2, "batch_size": 3, "warmup_epochs": 0, "accumulate": 1}, "seed": 0})
    model = build_tiny("masked_gt_latent")
    calls = []
    real = model.after_optimizer_step
    monkeypatch.setattr(model, "after_optimizer_step", lambda step, total: (calls.append((step, total)), real(step, total)))
    events = make_events() * 2  # 6 events, 2 batches of 3 per epoch
    start = _params(model.teacher)
    Trainer(model, cfg, events, [e.num_nodes for e in events], DistContext()).fit()
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert any(not torch.equal(start[k], v) for k, v in _params(model.teacher).items())
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())


def test_targets_are_the_layer_normalised_mean_of_the_top_layers():
    g = torch.Generator().manual_seed(0)
    states = [torch.randn(7, 6, generator=g) * (i + 1) + i for i in range(3)]
    want = F.layer_norm((F.layer_norm(states[1], (6,)) + F.layer_norm(states[2], (6,))) / 2, (6,))
    torch.testing.assert_close(latent_targets(states, 2), want)
    torch.testing.assert_close(latent_targets(states, 1), F.layer_norm(states[2], (6,)))
    y = latent_targets(states, 3)
    torch.testing.assert_close(y.mean(1), torch.zeros(7), atol=1e-6, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(7), atol=1e-3, rtol=0)  # LN eps


def test_loss_falls_when_overfitting_one_batch():
    model = build_tiny("masked_gt_latent").train()
    batch = make_batch()
    torch.manual_seed(1)
    hidden = model.mask_nodes(batch)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(1, 81):
        loss, spread = model.latent_loss(batch, hidden)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step(step, 80)
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]
    assert float(spread) > 0.1  # the targets did not collapse to one token


def test_finetuning_loads_the_student_encoder(tmp_path, tiny_dataset):
    """Pretrain with the shipped config, fine-tune with --init-from: multitask's masked_gt encoder
    starts exactly as the pretrained student (not the teacher)."""
    from pathlib import Path

    from graphevent.cli.app import main
    from graphevent.nn import build_model
    from graphevent.nn.checkpoint import transfer_encoders
    from graphevent.nn.tasks import TaskConfig
    from graphevent.nn.checkpoint import load_run

    root = Path(__file__).resolve().parents[2] / "graphevent" / "configs" / "experiments"
    small = ["--set", "model.masked_gt.depth=1", "--set", "model.masked_gt.dim=16", "--set", "model.masked_gt.heads=2",
             "--set", "model.masked_gt.k=8"]
    assert main(["train", "-c", str(root / "masked_gt_latent_pretrain.yaml"), "--out", str(tmp_path / "lat"),
                 "--data", str(tiny_dataset), "--epochs", "1", "--batch-size", "16", "--no-progress",
                 "--set", "train.num_workers=0", "--set", "model.target_layers=1", *small]) == 0
    pre, cfg, info = load_run(tmp_path / "lat", "last")
    assert cfg.stage == "pretrain" and list(pre.encoder_modules()) == ["masked_gt"]
    student, teacher = pre.backbone.encoder.state_dict(), pre.teacher.state_dict()
    assert any(not torch.equal(student[k], teacher[k]) for k in student)
    gt = {"dim": 16, "depth": 1, "heads": 2, "k": 8}
    ft = build_model({"name": "multitask", "masked_gt": gt}, info, [TaskConfig("label", "classification")])
    assert transfer_encoders(ft, tmp_path / "lat" / "checkpoints" / "last.pt") == ["masked_gt"]
    got = ft.encoder_modules()["masked_gt"].state_dict()
    assert got.keys() == student.keys() and all(torch.equal(got[k], student[k]) for k in student)


def test_target_layers_are_validated():
    from graphevent.errors import ConfigError
    from graphevent.nn import build_model

    with pytest.raises(ConfigError, match=r"model.target_layers: 3; expected 1 .. masked_gt.depth \(2\)"):
        build_model({"name": "masked_gt_latent", "target_layers": 3, **TINY["masked_gt_latent"]}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.ema_end_decay: 1.5; expected a decay in \[0, 1\]"):
        build_model({"name": "masked_gt_latent", "ema_end_decay": 1.5, **TINY["masked_gt_latent"]}, tiny_info())


def test_recon_weight_adds_the_masked_reconstruction_on_the_same_hidden_nodes():
    model = build_tiny("masked_gt_latent", recon_weight=0.5).train()
    batch = make_batch()
    torch.manual_seed(0)
    hidden = model.mask_nodes(batch)
    parts = model.objectives(batch, hidden)
    torch.testing.assert_close(parts["recon"], model.backbone.recon_loss(batch, hidden=hidden))
    total, logs = model.loss(batch, "pretrain")
    assert set(logs) == {"latent", "target_std", "recon"}
    assert float(total.detach()) == pytest.approx(logs["latent"] + 0.5 * logs["recon"], rel=1e-6)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.decoder.parameters())
    assert not hasattr(build_tiny("masked_gt_latent").backbone, "decoder")  # recon_weight 0: no decoder
