"""Batch plans: every event once per epoch, equal batch counts per rank, seeded, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from graphevent.errors import ConfigError
from graphevent.data.label_subset import label_subset
from graphevent.train.sampler import DistributedBatchSampler

NODES = np.random.default_rng(0).integers(1, 30, size=53)


def samplers(world: int, batch: int = 4, max_nodes: int = 0, indices=None, epoch: int = 2, seed: int = 5):
    out = [DistributedBatchSampler(NODES, batch, max_nodes, indices, world, r, seed=seed) for r in range(world)]
    for s in out:
        s.set_epoch(epoch)
    return out


@pytest.mark.parametrize("max_nodes", [0, 40])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_event_once_and_same_batch_count(world, max_nodes):
    ranks = [list(s) for s in samplers(world, max_nodes=max_nodes)]
    assert len({len(r) for r in ranks}) == 1
    assert all(len(b) >= 1 for r in ranks for b in r)
    seen = sorted(i for r in ranks for b in r for i in b)
    assert seen == list(range(53))


def test_node_cap_respected_and_batches_full():
    (s,) = samplers(1, max_nodes=40)
    batches = list(s)
    sizes = [int(NODES[b].sum()) for b in batches]
    assert all(n <= 40 for b, n in zip(batches, sizes) if len(b) > 1)
    # greedy packing closes a batch only when the next event would overflow it
    for b, nxt in zip(batches[:-1], batches[1:]):
        assert NODES[b].sum() + NODES[nxt[0]] > 40


def test_two_ranks_half_batch_cover_the_single_rank_batches():
    (one,) = samplers(1, batch=8)
    r0, r1 = samplers(2, batch=4)
    single, first, second = list(one), list(r0), list(r1)
    assert len(single) == len(first) == 7  # 53 events: 6 full steps + 5 left over
    for a, b, c in zip(single, first, second):
        assert a == b + c
    assert [len(b) for b in first[-1:] + second[-1:]] == [3, 2]  # the tail is split evenly


def test_loss_weights_turn_rank_means_into_the_step_mean():
    values = np.random.default_rng(1).normal(size=53)
    r0, r1 = samplers(2, batch=4)
    w0, w1 = r0.loss_weights(), r1.loss_weights()
    for b0, b1, a, b in zip(list(r0), list(r1), w0, w1):
        ddp_average = (a * values[b0].mean() + b * values[b1].mean()) / 2
        assert ddp_average == pytest.approx(values[b0 + b1].mean(), abs=1e-12)
    assert w0[-1] == pytest.approx(3 * 2 / 5) and w1[-1] == pytest.approx(2 * 2 / 5)


def test_seeded_order_changes_with_epoch_only():
    a = list(samplers(1, epoch=1)[0])
    assert a == list(samplers(1, epoch=1)[0])
    assert a != list(samplers(1, epoch=2)[0])
    assert a != list(samplers(1, epoch=1, seed=6)[0])
    unshuffled = DistributedBatchSampler(NODES, 4, shuffle=False)
    assert sum(unshuffled, []) == list(range(53))


def test_resume_offset_skips_batches_of_the_same_epoch():
    (s,) = samplers(2)[:1]
    full, weights = list(s), s.loss_weights()
    s.set_epoch(2, start=5)
    assert len(s) == len(full) - 5 and s.num_batches() == len(full)
    assert list(s) == full[5:]
    assert np.array_equal(s.loss_weights(), weights[5:])


def test_fewer_events_than_workers_still_gives_every_rank_a_batch():
    s = [DistributedBatchSampler([3, 4], 8, world_size=3, rank=r) for r in range(3)]
    batches = [list(x) for x in s]
    assert [len(b) for b in batches] == [1, 1, 1]
    assert set(i for b in batches for i in b[0]) == {0, 1}


@pytest.mark.parametrize("world", [1, 2])
def test_min_events_makes_an_epoch_of_whole_shuffled_passes(world):
    """A 7-event label subset with batch 2: without min_events an epoch is 4 steps (world 1);
    with 20 it is 3 passes (21 events, 11 steps), each pass every event once in a new order;
    a subset already large enough trains exactly as without it."""
    subset = np.array([3, 8, 11, 20, 31, 40, 52])
    plain = [DistributedBatchSampler(NODES, 2, 0, subset, world, r, seed=5) for r in range(world)]
    cycled = [DistributedBatchSampler(NODES, 2, 0, subset, world, r, seed=5, min_events=20) for r in range(world)]
    for s in plain + cycled:
        s.set_epoch(3)
    assert len(plain[0]) == (4 if world == 1 else 2)
    order = [i for step in cycled[0].plan() for b in step for i in b]
    # world 2: 5 steps of 4 events, then the 21st event alone, repeated so both ranks get a batch
    assert len(order) == (21 if world == 1 else 22) and len(cycled[0]) == (11 if world == 1 else 6)
    passes = [order[k * 7 : (k + 1) * 7] for k in range(3)]
    assert all(sorted(p) == subset.tolist() for p in passes)
    assert passes[0] != passes[1] and passes[1] != passes[2]
    assert passes[0] == [i for step in plain[0].plan() for b in step for i in b][:7]  # the first pass is the plain order
    assert len({len(s) for s in cycled}) == 1  # every rank the same number of batches
    big = DistributedBatchSampler(NODES, 4, seed=5, min_events=53)
    big.set_epoch(3)
    assert list(big) == list(samplers(1, epoch=3)[0])


def test_bad_arguments():
    with pytest.raises(ConfigError, match="train.batch_size: invalid value 0"):
        DistributedBatchSampler(NODES, 0)
    with pytest.raises(ConfigError, match="no events to train on"):
        DistributedBatchSampler(NODES, 4, indices=[])


def test_label_subset_is_fixed_nested_and_order_independent():
    ids = np.arange(1000, 1400) * 7
    a = label_subset(ids, 0.25, seed=3)
    assert len(a) == 100 and np.array_equal(a, label_subset(ids, 0.25, seed=3))
    assert set(ids[a]) <= set(ids[label_subset(ids, 0.5, seed=3)])  # smaller fraction = subset
    assert set(ids[a]) != set(ids[label_subset(ids, 0.25, seed=4)])
    perm = np.random.default_rng(0).permutation(len(ids))
    assert set(ids[perm][label_subset(ids[perm], 0.25, seed=3)]) == set(ids[a])
    assert np.array_equal(label_subset(ids, 1.0, seed=3), np.arange(400))
    with pytest.raises(ConfigError, match="label_fraction: invalid value 0"):
        label_subset(ids, 0.0, seed=3)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_label_subset_is_what_every_worker_count_trains_on(world):
    ids = np.arange(53) + 500
    subset = label_subset(ids, 0.3, seed=0)
    ranks = [list(s) for s in samplers(world, indices=subset)]
    assert sorted(i for r in ranks for b in r for i in b) == sorted(subset.tolist())


def test_label_seeds_draw_different_subsets_of_the_right_size():
    ids = np.arange(2000) * 3 + 11
    labels = np.arange(2000) % 2
    subsets = {s: label_subset(ids, 0.05, s, labels=labels, min_per_class=5) for s in range(4)}
    for s, sub in subsets.items():
        assert len(sub) == 100  # round(0.05 * 2000); both classes already have >= 5
        assert np.array_equal(sub, label_subset(ids, 0.05, s, labels=labels, min_per_class=5))
    overlaps = [len(np.intersect1d(subsets[a], subsets[b])) for a in range(4) for b in range(a + 1, 4)]
    assert max(overlaps) < 20  # independent draws of 100 of 2000 share about 5 events


def test_label_subset_keeps_a_minimum_per_class_at_tiny_fractions():
    ids = np.arange(1000) + 7
    labels = (np.arange(1000) % 10 == 0).astype(int)  # 100 events of class 1, 900 of class 0
    plain = label_subset(ids, 0.005, seed=2)
    assert len(plain) == 5
    for seed in range(20):
        sub = label_subset(ids, 0.005, seed, labels=labels, min_per_class=4)
        counts = np.bincount(labels[sub], minlength=2)
        assert counts.min() >= 4 and 5 <= len(sub) <= 5 + 8
        assert set(sub) >= set(label_subset(ids, 0.005, seed))  # the plain draw plus top-ups
        assert set(sub) <= set(label_subset(ids, 0.05, seed, labels=labels, min_per_class=4))  # still nested
    # a class with fewer events than the minimum contributes all of them
    rare = np.zeros(1000, int)
    rare[[3, 500]] = 1
    sub = label_subset(ids, 0.01, seed=0, labels=rare, min_per_class=5)
    assert {3, 500} <= set(sub) and np.bincount(rare[sub], minlength=2)[0] >= 5
    with pytest.raises(ConfigError, match="label_subset: 3 labels for 1000 events"):
        label_subset(ids, 0.1, 0, labels=[0, 1, 0], min_per_class=1)
