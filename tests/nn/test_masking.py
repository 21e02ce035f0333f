"""Masked pretraining: hidden fractions, patches, loss on hidden nodes only, no in-place changes."""

from __future__ import annotations

import pytest
import torch

from nn_helpers import SIZES, build_tiny, make_batch
from graphevent.nn.layers.masking import hashed_uniform, hidden_counts, rank_within_event, sample_hidden_nodes
from graphevent.nn.layers.packing import EventPacking


@pytest.mark.parametrize("mode", ["random", "patch"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.75])
def test_hidden_fraction_matches_the_configured_ratio(mode, ratio):
    model = build_tiny("masked_gt_ae", mask_ratio=ratio, mask_mode=mode).train()
    batch = make_batch()
    hidden = model.mask_nodes(batch, generator=torch.Generator().manual_seed(0))
    per_event = torch.bincount(batch.batch[hidden], minlength=len(SIZES)).tolist()
    assert per_event == [round(ratio * n) for n in SIZES]  # 0.3: 3, 8 (7.5 -> even), 12


def test_hidden_counts_keep_one_node_visible_and_one_hidden():
    assert hidden_counts(torch.tensor([1, 2, 3, 10]), 0.9).tolist() == [0, 1, 2, 9]
    assert hidden_counts(torch.tensor([2, 10]), 0.01).tolist() == [1, 1]


def test_rank_within_event_ranks_each_event_separately():
    score = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2, 0.3])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    assert rank_within_event(score, EventPacking.from_batch(batch, 2)).tolist() == [1, 0, 2, 1, 0, 2]  # tie: node order


def test_patch_masking_hides_the_nodes_nearest_to_the_patch_centre():
    pos = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2], [0.9, 0.9], [-0.8, 0.7], [0.5, -0.9]])
    batch = torch.zeros(6, dtype=torch.long)
    noise = torch.tensor([0.01, 0.5, 0.6, 0.7, 0.8, 0.9])  # node 0 is the single centre
    hidden = sample_hidden_nodes(pos, batch, noise, ratio=0.5, mode="patch", num_patches=1)
    assert hidden.tolist() == [True, True, True, False, False, False]
    random = sample_hidden_nodes(pos, batch, noise, ratio=0.5, mode="random")
    assert random.tolist() == [True, True, True, False, False, False]  # smallest noise
    noise2 = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.01])  # centre: node 5 at (0.5, -0.9)
    hidden2 = sample_hidden_nodes(pos, batch, noise2, ratio=0.5, mode="patch", num_patches=1)
    assert hidden2.tolist() == [True, True, False, False, False, True]


@pytest.mark.parametrize("mode", ["random", "patch"])
def test_an_event_gets_the_same_mask_alone_as_in_a_batch(mode):
    gen = torch.Generator().manual_seed(3)
    sizes = [1, 2, 5, 17, 40, 300, 120]  # some events with fewer nodes than patch centres
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    pos = torch.rand(len(batch), 2, generator=gen) * 2 - 1
    noise = torch.rand(len(batch), generator=gen)
    hidden = sample_hidden_nodes(pos, batch, noise, 0.5, mode, num_patches=7, num_events=len(sizes))
    for i, n in enumerate(sizes):
        sel = batch == i
        alone = sample_hidden_nodes(pos[sel], torch.zeros(n, dtype=torch.long), noise[sel], 0.5, mode, num_patches=7)
        assert torch.equal(hidden[sel], alone) and int(alone.sum()) == hidden_counts(torch.tensor([n]), 0.5).item()
    if mode == "patch":  # by hand for the 17-node event: the 7 smallest-noise nodes are the centres
        sel = batch == 3
        p, u = pos[sel], noise[sel]
        centres = p[u.argsort()[:7]]
        score = (p[:, None] - centres[None]).norm(dim=-1).min(1).values + 1e-6 * u
        expected = torch.zeros(17, dtype=torch.bool)
        expected[score.argsort()[:8]] = True  # round(0.5 * 17) = 8 (half to even)
        assert torch.equal(hidden[sel], expected)


def test_training_masks_follow_the_generator_and_eval_masks_are_fixed_per_event():
    model = build_tiny("masked_gt_ae").train()
    batch = make_batch()
    a = model.mask_nodes(batch, torch.Generator().manual_seed(1))
    b = model.mask_nodes(batch, torch.Generator().manual_seed(1))
    c = model.mask_nodes(batch, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    model.eval()
    assert torch.equal(model.mask_nodes(batch), model.mask_nodes(batch))
    u = hashed_uniform(torch.full((20000,), 7), torch.arange(20000))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean().item() - 0.5) < 0.01
    assert not torch.equal(u, hashed_uniform(torch.full((20000,), 8), torch.arange(20000)))


def test_recon_loss_ignores_visible_node_targets_and_counts_hidden_ones():
    model = build_tiny("masked_gt_ae").eval()
    batch = make_batch()
    hidden = model.mask_nodes(batch)
    base = model.recon_loss(batch, hidden=hidden)
    target = batch.x.clone()
    target[~hidden] += 5.0  # change only visible-node targets
    assert model.recon_loss(batch, hidden=hidden, target=target).item() == base.item()
    target = batch.x.clone()
    target[hidden.nonzero()[0]] += 5.0  # change one hidden-node target
    assert model.recon_loss(batch, hidden=hidden, target=target).item() > base.item() + 1e-3
    # by hand: mean over hidden nodes and channels of the squared standardised error
    pred = model.decode(*model.encode(batch, visible=~hidden), batch, hidden)
    std = (batch.x - 0.5) / 0.6
    expected = (pred - std)[hidden].square().mean()
    assert torch.allclose(base, expected, atol=1e-6)


def test_masking_never_changes_the_callers_tensors():
    model = build_tiny("masked_gt_ae").train()
    batch = make_batch()
    before = {k: batch[k].clone() for k in ("x", "pos", "edge_index", "edge_attr", "batch")}
    model.loss(batch, "pretrain")[0].backward()
    model.eval()
    model.predict(batch)
    model.reconstruct(batch)
    assert all(torch.equal(batch[k], v) for k, v in before.items())


def test_reconstruction_keeps_visible_values_and_fills_hidden_ones():
    model = build_tiny("masked_gt_ae").eval()
    batch = make_batch()
    rec = model.reconstruct(batch)
    assert rec.values.shape == batch.x.shape and rec.hidden.sum() == sum(round(0.5 * n) for n in SIZES)
    assert torch.equal(rec.values[~rec.hidden], batch.x[~rec.hidden])
    assert not torch.allclose(rec.values[rec.hidden], batch.x[rec.hidden])
    images = rec.to_images((0.1, 0.1), (21, 21))
    assert images.shape == (3, 3, 21, 21)
    assert torch.allclose(images.sum(dim=(2, 3)), torch.stack([rec.event(i)[1].sum(0) for i in range(3)]), atol=1e-5)
