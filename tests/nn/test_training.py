"""Overfitting one small batch, and frozen-encoder fine-tuning."""

from __future__ import annotations

import pytest
import torch

from nn_helpers import build_tiny, make_batch
from test_models import TASKS


def _fit(model, loss_fn, target_ratio: float, max_steps: int, lr: float = 3e-3) -> tuple[float, float]:
    """Adam steps until the loss is ``target_ratio`` times below its first value (or max_steps)."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    first = last = None
    for _ in range(max_steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        last = loss.item()
        first = last if first is None else first
        if last * target_ratio <= first:
            break
    return first, last


def test_masked_gt_autoencoder_overfits_one_batch():
    model = build_tiny("masked_gt_ae").train()
    batch = make_batch()
    hidden = model.mask_nodes(batch, torch.Generator().manual_seed(0))  # one fixed mask
    first, last = _fit(model, lambda: model.recon_loss(batch, hidden=hidden), 10.0, 400, lr=1e-2)
    assert last * 10 <= first


def test_edgeconv_autoencoder_overfits_one_batch():
    model = build_tiny("edgeconv_ae").train()
    batch = make_batch()
    first, last = _fit(model, lambda: model.recon_loss(batch), 10.0, 500)
    assert last * 10 <= first
    # still in train mode (BatchNorm with this batch's statistics, as in fitting):
    rec = model.reconstruct(batch)  # predicted pixel counts are close to the true ones
    counts = torch.bincount(rec.batch, minlength=3)
    assert torch.allclose(counts.float(), torch.tensor([10.0, 25.0, 40.0]), rtol=0.2)
    assert rec.to_images((0.1, 0.1), (21, 21)).shape == (3, 3, 21, 21)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("particlenet", {}),
        *[("multitask", {"encoders": e, "fusion": f})
          for e in (["masked_gt"], ["edgeconv"], ["masked_gt", "edgeconv"]) for f in ("cross_attention", "concat", "none")],
    ],
)
def test_every_head_configuration_overfits_a_labelled_batch(name, overrides):
    model = build_tiny(name, tasks=TASKS, **overrides).train()
    batch = make_batch()
    first, last = _fit(model, lambda: model.loss(batch, "finetune")[0], 100.0, 400)  # well past 10x
    assert last * 10 <= first
    pred = model.predict(batch)  # train mode: BatchNorm normalises with this batch's statistics, as in fitting
    assert torch.equal(pred["label"].argmax(1), batch.y)
    assert torch.allclose(pred["m0"], batch.targets[:, 0], atol=0.5 * 10)  # within half a std
    assert torch.allclose(pred["pt"], batch.targets[:, 1], atol=0.5 * 30)


def _encoder_state(model):
    return {f"{n}.{k}": v.clone() for n, enc in model.encoder_modules().items() for k, v in enc.state_dict().items()}


@pytest.mark.parametrize("how", ["config", "method"])
def test_frozen_encoder_fine_tuning_leaves_encoder_weights_bit_identical(how):
    if how == "config":
        model = build_tiny("multitask", tasks=TASKS, freeze_encoder=True)
    else:
        model = build_tiny("multitask", tasks=TASKS)
        assert model.freeze_encoders() == ["masked_gt", "edgeconv"]
    model.train()
    assert model.frozen_encoders == ["edgeconv", "masked_gt"]
    assert not any(enc.training for enc in model.encoder_modules().values())  # BatchNorm stats frozen too
    before = _encoder_state(model)
    heads_before = {k: v.clone() for k, v in model.heads.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)  # all parameters given
    batch = make_batch()
    for _ in range(3):
        opt.zero_grad()
        model.loss(batch, "finetune")[0].backward()
        opt.step()
    after = _encoder_state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(v, model.heads.state_dict()[k]) for k, v in heads_before.items())


def test_unfrozen_encoder_does_change():
    model = build_tiny("multitask", tasks=TASKS).train()
    before = _encoder_state(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt.zero_grad()
    model.loss(make_batch(), "finetune")[0].backward()
    opt.step()
    after = _encoder_state(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
