"""ParT pair biases in the masked_gt encoder: features by hand, pT columns, gradients, padding, off = unchanged."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch_geometric.data import Batch

from graphevent.errors import ConfigError
from graphevent.nn.export import pad_events, padded_module
from graphevent.nn.layers.pair_bias import PAIR_EPS, DepositPT, PairBias, deposit_pt_columns, pair_features
from graphevent.nn.tasks import TaskConfig
from nn_helpers import GT, build_tiny, make_events, tiny_info

TASKS = [TaskConfig("label", "classification"), TaskConfig("m0", "regression", target="m0")]
PAIRWISE = {**GT, "pairwise": True}


def test_pair_features_of_a_pair_by_hand():
    got = pair_features(torch.tensor([0.0, 0.0]), torch.tensor(1.0), torch.tensor([0.3, 0.4]), torch.tensor(3.0))
    m2 = 2 * 1.0 * 3.0 * (math.cosh(0.3) - math.cos(0.4))
    want = torch.tensor([math.log(0.5), math.log(1.0 * 0.5), math.log(1 / 4), math.log(m2)])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_pair_features_of_a_node_with_itself_and_without_energy_are_finite_with_finite_gradients():
    pos = torch.tensor([[0.1, -0.2], [0.1, -0.2]], requires_grad=True)
    pt = torch.tensor([2.0, 0.0], requires_grad=True)
    feats = pair_features(pos[:, None], pt[:, None], pos[None], pt[None])  # (2, 2, 4): every pair
    assert feats.shape == (2, 2, 4)
    assert feats[0, 0, 0].item() == pytest.approx(math.log(PAIR_EPS))  # dR = 0
    assert feats[0, 1, 2].item() == pytest.approx(math.log(PAIR_EPS))  # z = 0 / 2
    feats.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(pt.grad).all()


def test_deposit_pt_sums_the_unsigned_channels_with_log1p_undone():
    info = replace(tiny_info(), node_features=["tracks", "ecal", "d0"], feature_transforms=["log1p", "none", "none"],
                   feature_signed=[False, False, True])
    cols, log1p = deposit_pt_columns(info)
    assert (cols, log1p) == ([0, 1], [True, False])
    x = torch.tensor([[math.log1p(2.0), 3.0, -5.0], [0.0, -1.0, 9.0]])
    torch.testing.assert_close(DepositPT(cols, log1p)(x), torch.tensor([5.0, 0.0]))  # the sum floored at 0
    assert deposit_pt_columns(info, ["ecal"]) == ([1], [False])


def test_deposit_pt_columns_refuse_unknown_features_and_datasets_without_channel_transforms():
    with pytest.raises(ConfigError, match=r"^model.pair_pt_features: \['hits'\] not among the node features; "
                                          r"expected some of \['tracks', 'ecal', 'hcal'\]$"):
        deposit_pt_columns(tiny_info(), ["hits"])
    with pytest.raises(ConfigError, match=r"^model.pair_pt_features: the dataset does not record how its node features"):
        deposit_pt_columns(replace(tiny_info(), feature_transforms=[], feature_signed=[]))
    with pytest.raises(ConfigError, match=r"^pair_pt_features of the masked_gt encoder: \['x'\] not among"):
        build_tiny("multitask", encoders=["masked_gt"], masked_gt={**PAIRWISE, "pair_pt_features": ["x"]})


def test_pair_bias_shapes():
    bias = PairBias(heads=3, hidden=8)
    out = bias(torch.zeros(5, 1, 2), torch.ones(5, 1), torch.rand(5, 7, 2), torch.rand(5, 7))
    assert out.shape == (5, 7, 3) and torch.isfinite(out).all()
    assert repr(bias) == "PairBias(4 -> 3, hidden=8)"


def test_pairwise_off_keeps_the_state_dict_and_the_outputs():
    """The default (off) has no new parameter: a state dict of the model before this option loads
    strictly and gives the same outputs."""
    off = build_tiny("multitask", TASKS, encoders=["masked_gt"]).eval()
    assert not any("pair" in k or "deposit" in k for k in off.state_dict())
    again = build_tiny("multitask", TASKS, encoders=["masked_gt"], masked_gt={**GT, "pairwise": False}).eval()
    again.load_state_dict(off.state_dict(), strict=True)
    batch = Batch.from_data_list(make_events())
    for task, value in off.predict(batch).items():
        assert torch.equal(value, again.predict(batch)[task])


def test_pairwise_changes_the_outputs_and_gradients_reach_the_pair_biases():
    on = build_tiny("multitask", TASKS, encoders=["masked_gt"], masked_gt=PAIRWISE)
    enc = on.backbones["masked_gt"].encoder
    names = {n for n, _ in on.named_parameters() if ".pair_local." in n or ".pair_global." in n}
    assert len(names) == 8  # two MLPs (4 -> hidden -> heads), weights and biases
    batch = Batch.from_data_list(make_events())
    loss, logs = on.loss(batch, "finetune")
    assert all(math.isfinite(v) for v in logs.values())
    loss.backward()
    for n, p in on.named_parameters():
        if n in names:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    off = build_tiny("multitask", TASKS, encoders=["masked_gt"])
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k in off.state_dict()}, strict=True)
    tokens_on, _ = enc(batch)
    tokens_off, _ = off.backbones["masked_gt"].encoder(batch)
    assert tokens_on.shape == (75, 16) and (tokens_on - tokens_off).abs().max() > 1e-3


def test_pairwise_event_outputs_do_not_depend_on_the_batch_or_on_padding():
    """Each event's outputs are the same alone or batched (eager), and the padded form's with
    extra padded nodes (any values there) equal them within 1e-5."""
    model = build_tiny("multitask", TASKS, encoders=["masked_gt"], masked_gt=PAIRWISE).eval()
    events = make_events((10, 25, 40))
    together = model.predict(Batch.from_data_list(events))
    for i, e in enumerate(events):
        alone = model.predict(Batch.from_data_list([e]))
        for task, value in alone.items():
            torch.testing.assert_close(value, together[task][i:i + 1], atol=1e-5, rtol=1e-5)
    padded = padded_module(model)
    for extra in (0, 9):
        f, p, m = pad_events(events, 40 + extra)
        f[~m], p[~m] = 5.0, 3.0  # values at padding are ignored
        for got, (task, want) in zip(padded(f, p, m), together.items()):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=task)


def test_pretraining_with_pairwise_reconstructs_without_nan():
    model = build_tiny("masked_gt_ae", pairwise=True)
    assert model.decoder is not None and not any("pair" in n for n, _ in model.decoder.named_parameters())
    loss, logs = model.loss(Batch.from_data_list(make_events()), "pretrain")
    loss.backward()
    assert math.isfinite(logs["recon"])
    assert all(p.grad is not None for n, p in model.encoder.named_parameters() if "pair" in n)


def test_the_shipped_pairwise_config_builds_a_model_with_pair_biases():
    from graphevent.config.experiment import load_experiment
    from graphevent.nn.registry import build_model

    cfg = load_experiment("multitask_pairwise")
    model = build_model(cfg.model, tiny_info(), [TaskConfig(**t) if isinstance(t, dict) else t for t in cfg.tasks])
    enc = model.backbones["masked_gt"].encoder
    assert list(model.backbones) == ["masked_gt"] and enc.pair_local is not None and enc.pair_global is not None
    assert enc.deposit_pt.columns.tolist() == [0, 1, 2]  # every unsigned channel of tracks, ecal, hcal
    off = load_experiment("multitask_pairwise", ["model.masked_gt.pairwise=false"])
    assert build_model(off.model, tiny_info()).backbones["masked_gt"].encoder.pair_local is None


def test_pair_event_wide_false_biases_the_knn_attention_only():
    model = build_tiny("multitask", TASKS, encoders=["masked_gt"], masked_gt={**PAIRWISE, "pair_event_wide": False}).eval()
    enc = model.backbones["masked_gt"].encoder
    assert enc.pair_local is not None and enc.pair_global is None
    events = make_events()
    want = model.predict(Batch.from_data_list(events))
    for got, (task, value) in zip(padded_module(model)(*pad_events(events)), want.items()):
        torch.testing.assert_close(got, value, atol=1e-5, rtol=1e-5, msg=task)
