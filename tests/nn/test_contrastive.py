"""Jet augmentations keep what they must; the contrastive pretrainer learns, is seeded, and never reads labels."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch_geometric.utils import scatter

from nn_helpers import SIZES, build_tiny, make_batch, make_events, tiny_info
from graphevent.nn.layers.jet_augment import JetAugment, collinear_split, flip, jet_axis, rotate_about_axis, smear, translate
from graphevent.nn.models.contrastive import nt_xent
from graphevent.nn.registry import list_encoders


def _nodes():
    batch = make_batch()
    return batch.x, batch.pos, batch.batch, len(SIZES)


def test_rotation_about_the_axis_keeps_axis_and_distances():
    x, pos, b, n = _nodes()
    w = torch.expm1(x).sum(1)
    angle = torch.tensor([0.3, 2.0, -1.1])
    out = rotate_about_axis(pos, w, b, angle)
    axis = jet_axis(pos, w, b, n)
    assert torch.allclose(jet_axis(out, w, b, n), axis, atol=1e-6)
    assert torch.allclose((out - axis[b]).norm(dim=1), (pos - axis[b]).norm(dim=1), atol=1e-6)
    assert not torch.allclose(out, pos)
    # a quarter turn of a node at axis + (d, 0) lands at axis + (0, d)
    one = rotate_about_axis(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.ones(2), torch.zeros(2, dtype=torch.long),
                            torch.tensor([math.pi / 2]))
    assert torch.allclose(one, torch.tensor([[2.0, -1.0], [2.0, 1.0]]), atol=1e-6)


def test_translation_moves_each_event_by_its_shift():
    _, pos, b, n = _nodes()
    shift = torch.tensor([[0.1, 0.0], [0.0, -0.2], [0.05, 0.05]])
    assert torch.allclose(translate(pos, b, shift) - pos, shift[b])


def test_smearing_scales_only_extensive_columns():
    v = torch.tensor([[2.0, 4.0], [1.0, -3.0]])
    out = smear(v, torch.tensor([1.0, -20.0]), 0.1, torch.tensor([True, False]))
    assert torch.allclose(out, torch.tensor([[2.2, 4.0], [0.0, -3.0]]))


def test_collinear_split_keeps_totals_axis_and_order():
    x, pos, b, n = _nodes()
    v = torch.expm1(x)
    split = torch.zeros(len(b), dtype=torch.bool)
    split[[0, 5, 12, 40]] = True
    z = torch.full((len(b),), 0.3)
    ext = torch.tensor([True, True, False])
    v2, pos2, b2 = collinear_split(v, pos, b, split, z, ext)
    assert v2.shape == (len(b) + 4, 3) and pos2.shape == (len(b) + 4, 2)
    assert torch.equal(b2, b2.sort().values)
    assert scatter(torch.ones_like(b2), b2, 0, dim_size=n, reduce="sum").tolist() == [SIZES[0] + 2, SIZES[1] + 1, SIZES[2] + 1]
    assert torch.allclose(scatter(v2[:, :2], b2, 0, dim_size=n, reduce="sum"), scatter(v[:, :2], b, 0, dim_size=n, reduce="sum"))
    w, w2 = v[:, :2].sum(1), v2[:, :2].sum(1)
    assert torch.allclose(jet_axis(pos2, w2, b2, n), jet_axis(pos, w, b, n), atol=1e-6)
    # node 0 keeps 0.3 of its energy, its copy right after it carries 0.7; the signed column is copied
    assert torch.allclose(v2[0, :2], 0.3 * v[0, :2]) and torch.allclose(v2[1, :2], 0.7 * v[0, :2])
    assert v2[1, 2] == v[0, 2] and torch.equal(pos2[1], pos[0])


def test_jet_augment_in_log_space_keeps_energy_and_is_seeded():
    x, pos, b, n = _nodes()
    aug = JetAugment(["log1p"] * 3, rotate=True, translate=0.0, smear=0.0, split_prob=0.3)
    x2, pos2, b2 = aug(x, pos, b, n, torch.Generator().manual_seed(0))
    assert len(b2) > len(b)
    tot = scatter(torch.expm1(x), b, 0, dim_size=n, reduce="sum")
    assert torch.allclose(scatter(torch.expm1(x2), b2, 0, dim_size=n, reduce="sum"), tot, rtol=1e-5)
    again = aug(x, pos, b, n, torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip((x2, pos2, b2), again))
    other = aug(x, pos, b, n, torch.Generator().manual_seed(1))
    assert not torch.equal(pos2[: len(b)], other[1][: len(b)]) or len(other[2]) != len(b2)


def test_nt_xent_known_values():
    # one event: the positive is the only candidate -> loss 0
    assert nt_xent(torch.randn(1, 4), torch.randn(1, 4), 0.1).item() == pytest.approx(0.0, abs=1e-6)
    # two orthogonal events, identical views: each row's candidates are cos 1 (positive) and 0 twice
    a = torch.eye(2)
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert nt_xent(a, a.clone(), t).item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_is_seeded_and_decreases_on_one_batch():
    model = build_tiny("contrastive").train()
    batch = make_batch()
    l1 = model.contrastive_loss(batch, torch.Generator().manual_seed(3))
    l2 = model.contrastive_loss(batch, torch.Generator().manual_seed(3))
    assert torch.equal(l1, l2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(12):
        opt.zero_grad()
        loss = model.contrastive_loss(batch, torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_contrastive_encoder_transfers_to_multitask_by_name():
    model = build_tiny("contrastive")
    assert list(model.encoder_modules()) == ["masked_gt"]
    target = build_tiny("multitask")
    target.encoder_modules()["masked_gt"].load_state_dict(model.encoder_modules()["masked_gt"].state_dict(), strict=True)


@pytest.mark.parametrize("encoder", list(list_encoders()))
def test_contrastive_pretrains_any_registered_encoder_and_transfers_it_to_multitask(encoder):
    from nn_helpers import TINY_ENCODERS

    section = TINY_ENCODERS[encoder]
    model = build_tiny("contrastive", **{"masked_gt": None, "encoder": encoder, encoder: section}).train()
    assert list(model.encoder_modules()) == [encoder]
    loss = model.contrastive_loss(make_batch(), torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for p in model.encoder_modules()[encoder].parameters())
    target = build_tiny("multitask", encoders=[encoder], **{encoder: section})
    target.encoder_modules()[encoder].load_state_dict(model.encoder_modules()[encoder].state_dict(), strict=True)


def test_contrastive_config_of_earlier_versions_reads_back_and_rebuilds_the_same_model():
    from graphevent.nn import build_model
    from graphevent.nn.models.edgeconv_ae import EdgeConvAEConfig
    from nn_helpers import GT

    # earlier versions wrote both encoders' sections into the checkpoint's model_config
    old = {"name": "contrastive", "encoder": "masked_gt", "proj_hidden": 16, "proj_dim": 8, "temperature": 0.1,
           "rotate": True, "translate": 0.02, "smear": 0.1, "split_prob": 0.1, "masked_gt": GT,
           "edgeconv": dataclasses.asdict(EdgeConvAEConfig())}
    model = build_model(old, tiny_info())
    assert list(model.encoder_modules()) == ["masked_gt"]
    again = build_model(model.model_config, tiny_info())
    assert again.config == model.config and set(model.model_config) >= {"masked_gt", "edgeconv"}
    again.load_state_dict(model.state_dict(), strict=True)


def test_contrastive_rejects_an_unknown_encoder_and_unknown_keys():
    from graphevent.errors import ConfigError
    from graphevent.nn import build_model

    with pytest.raises(ConfigError, match=r"^model.encoder: unknown encoder 'resnet15'; registered encoders: edgeconv, masked_gt, sparse_conv$"):
        build_model({"name": "contrastive", "encoder": "resnet15"}, tiny_info())
    with pytest.raises(ConfigError, match=r"^model: unknown key 'depth'; valid keys: encoder, proj_dim, .*or an encoder's section: edgeconv, masked_gt, sparse_conv$"):
        build_model({"name": "contrastive", "depth": 3}, tiny_info())


def test_contrastive_needs_channel_transforms_for_energy_augmentations():
    from dataclasses import replace

    from graphevent.errors import ConfigError
    from graphevent.nn import build_model
    from nn_helpers import TINY

    info = replace(tiny_info(), feature_transforms=[], feature_signed=[])
    model = build_model({"name": "contrastive", **TINY["contrastive"]}, info)
    with pytest.raises(ConfigError, match="smear and split_prob need the dataset's channel transforms"):
        model.loss(make_batch())
    model = build_model({"name": "contrastive", **TINY["contrastive"], "smear": 0.0, "split_prob": 0.0}, info)
    assert torch.isfinite(model.loss(make_batch())[0])


PRETRAIN = ["masked_gt_ae", "edgeconv_ae", "contrastive", "masked_gt_latent", "masked_gt_occupancy"]


@pytest.mark.parametrize("name", PRETRAIN)
def test_pretraining_never_reads_labels(name):
    """A pretraining epoch on events without ``y`` and ``targets`` (any read would raise), or
    with them permuted, gives the same weights (an EMA teacher's included) as on the same
    events with their labels."""
    from graphevent.config.experiment import experiment_from_dict
    from graphevent.nn import list_models
    from graphevent.utils.distributed import DistContext
    from graphevent.train.engine import Trainer
    from nn_helpers import TINY

    assert list_models()[name].supports_pretrain
    cfg = experiment_from_dict({"stage": "pretrain", "model": {"name": name, **TINY[name]},
                                "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0}, "seed": 0})
    labelled = make_events() * 3
    blind = []
    for e in labelled:
        e = e.clone()
        del e.y
        del e.targets
        blind.append(e)
    permuted = []
    for i, e in enumerate(labelled):
        e = e.clone()
        e.y = labelled[(i + 1) % len(labelled)].y.clone()
        e.targets = labelled[(i + 2) % len(labelled)].targets.clone()
        permuted.append(e)
    assert any(int(a.y) != int(b.y) for a, b in zip(labelled, permuted))
    weights = []
    for events in (labelled, blind, permuted):
        torch.manual_seed(0)
        model = build_tiny(name)
        Trainer(model, cfg, events, [e.num_nodes for e in events], DistContext()).fit()
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for other in weights[1:]:
        assert weights[0].keys() == other.keys()
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_augmented_view_carries_each_events_labels_and_leaves_the_batch_alone():
    batch = make_batch()
    batch.labelled = torch.tensor([True, False, True])
    before = batch.clone()
    aug = JetAugment(["log1p"] * 3, rotate=True)
    view = aug.view(batch, torch.Generator().manual_seed(0))
    for key in ("y", "targets", "event_id", "labelled"):
        assert torch.equal(view[key], batch[key]), key
    assert "edge_index" not in view and "edge_attr" not in view
    assert torch.equal(view.x, batch.x) and torch.equal(view.batch, batch.batch) and torch.equal(view.ptr, batch.ptr)
    assert view.num_graphs == len(SIZES)
    # a rotation: every event's pairwise distances kept, the positions moved
    assert (view.pos - batch.pos).abs().max() > 1e-2
    for e in range(len(SIZES)):
        rows = batch.batch == e
        a, b = view.pos[rows], batch.pos[rows]
        assert torch.allclose((a[:, None] - a[None]).norm(dim=-1), (b[:, None] - b[None]).norm(dim=-1), atol=1e-5)
    for key in before.keys():
        assert torch.equal(batch[key], before[key]), key


def test_flip_maps_the_pixel_grid_onto_itself():
    pitch = 0.0174
    pos = (torch.randint(-62, 63, (40, 2)) * pitch).float()
    batch = torch.arange(4).repeat_interleave(10)
    signs = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    swap = torch.tensor([False, True, False, True])
    out = flip(pos, batch, signs, swap)
    assert torch.equal(out[:10], pos[:10])
    assert torch.equal(out[10:20], torch.stack([pos[10:20, 1], -pos[10:20, 0]], 1))  # reflect eta, then swap
    assert torch.equal(out[20:30], torch.stack([pos[20:30, 0], -pos[20:30, 1]], 1))
    assert torch.equal(out[30:], -pos[30:].flip(-1))
    # on the lattice: every coordinate is still a whole number of pixels
    assert torch.allclose(out / pitch, (out / pitch).round(), atol=1e-4)
    aug = JetAugment(["log1p"] * 3, rotate=False, flip=True)
    x2, pos2, b2 = aug(torch.rand(40, 3), pos, batch, 4, torch.Generator().manual_seed(0))
    assert torch.allclose(pos2.abs().sort(-1).values, pos.abs().sort(-1).values)  # |eta|, |phi| kept up to the swap
    # an axis that wraps: reflections only, never the swap (whole events' eta and phi ranges differ)
    periodic = JetAugment(["log1p"] * 3, rotate=False, flip=True, periods=(0.0, 2 * math.pi))
    for seed in range(8):
        _, p3, _ = periodic(torch.rand(40, 3), pos, batch, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(p3.abs(), pos.abs())


@pytest.mark.parametrize("setting", ["augment_rotate", "augment_flip"])
def test_multitask_augments_its_training_events_only(setting):
    """``augment_rotate`` and ``augment_flip`` change the training loss (and are seeded); validation (eval mode) and
    prediction see the events as they are: the same numbers as the model without it."""
    batch = make_batch()
    plain = build_tiny("multitask", dropout=0.0)
    rotated = build_tiny("multitask", dropout=0.0, **{setting: True})
    assert rotated.state_dict().keys() == plain.state_dict().keys()
    rotated.load_state_dict(plain.state_dict())
    plain.eval(), rotated.eval()
    assert torch.equal(rotated.loss(batch)[0], plain.loss(batch)[0])
    assert torch.equal(rotated.predict(batch)["label"], plain.predict(batch)["label"])
    plain.train(), rotated.train()
    torch.manual_seed(5)
    first = rotated.loss(batch)[0]
    torch.manual_seed(5)
    assert torch.equal(rotated.loss(batch)[0], first)
    assert not torch.allclose(first, plain.loss(batch)[0])
    first.backward()
    assert all(p.grad is not None for p in rotated.heads.parameters())


def test_multitask_rejects_a_negative_augmentation_and_needs_transforms_for_smearing():
    from dataclasses import replace

    from graphevent.errors import ConfigError
    from graphevent.nn import build_model
    from nn_helpers import TINY

    with pytest.raises(ConfigError, match=r"^model.augment_\*: translate and smear must be >= 0 and split_prob in \[0, 1\) \(found 0.0, -0.1, 0.0\)$"):
        build_tiny("multitask", augment_smear=-0.1)
    info = replace(tiny_info(), feature_transforms=[], feature_signed=[])
    with pytest.raises(ConfigError, match="model.augment_smear, model.augment_split_prob: they need the dataset's channel transforms"):
        build_model({"name": "multitask", **TINY["multitask"], "augment_smear": 0.1}, info)
    assert build_model({"name": "multitask", **TINY["multitask"], "augment_rotate": True}, info).augment is not None
