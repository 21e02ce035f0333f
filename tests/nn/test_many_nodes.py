"""Whole events of thousands of nodes: kNN in blocks of query nodes, event-wide attention
through pooled global tokens above a node threshold; both equal the all-pairs computation
where it applies (jets unchanged)."""

from __future__ import annotations

import torch

from graphevent.nn.layers.knn import knn_graph

PIXEL = (0.0174, 0.0174)


def _lattice_batch(sizes, seed=0):
    """Positions of distinct pixels of a 20 x 20 lattice (many exactly equidistant pairs),
    events of ``sizes`` nodes, and the batch vector."""
    g = torch.Generator().manual_seed(seed)
    pos, batch = [], []
    for e, n in enumerate(sizes):
        cells = torch.randperm(400, generator=g)[:n]
        pos.append(torch.stack([cells // 20 - 10, cells % 20 - 10], 1).float() * PIXEL[0])
        batch.append(torch.full((n,), e))
    return torch.cat(pos), torch.cat(batch)


def test_knn_in_blocks_equals_one_block_with_ties():
    pos, batch = _lattice_batch([37, 5, 120, 64])
    whole = knn_graph(pos, batch, 8, 4, PIXEL)
    for block in (1, 4 * 120 * 7, 4 * 120 * 50):  # one query row at a time, 7 rows, 50 rows
        assert torch.equal(knn_graph(pos, batch, 8, 4, PIXEL, block_elements=block), whole)
    assert torch.equal(knn_graph(pos, batch, 8, 4, None, block_elements=1), knn_graph(pos, batch, 8, 4, None))
    periods = (0.0, 20 * PIXEL[1])  # phi wraps: columns -10 and 9 are neighbours
    wrapped = knn_graph(pos, batch, 8, 4, PIXEL, periods)
    assert not torch.equal(wrapped, whole)
    assert torch.equal(knn_graph(pos, batch, 8, 4, PIXEL, periods, block_elements=4 * 120 * 7), wrapped)


def test_knn_in_blocks_equals_one_block_in_feature_space():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(200, 8, generator=g)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([90, 30, 80]))
    whole = knn_graph(h, batch, 16, 3)
    assert whole.shape == (2, 200 * 16)
    assert torch.equal(knn_graph(h, batch, 16, 3, block_elements=3 * 90 * 30), whole)


def test_knn_default_block_keeps_jets_in_one_block_and_whole_events_small():
    from graphevent.nn.layers.dense_knn import KNN_BLOCK_ELEMENTS

    assert 128 * 300 * 300 <= KNN_BLOCK_ELEMENTS  # a batch of 128 jets: one block, as before
    rows = KNN_BLOCK_ELEMENTS // (4 * 5000)
    assert (rows, -(-5000 // rows)) == (838, 6)  # 4 events of 5,000 nodes: 6 blocks of 838 rows


def _pairwise_multitask(**masked_gt):
    from graphevent.nn.tasks import TaskConfig
    from nn_helpers import GT, build_tiny

    tasks = [TaskConfig("label", "classification")]
    return build_tiny("multitask", tasks, encoders=["masked_gt"], masked_gt={**GT, "pairwise": True, **masked_gt}).eval()


def test_event_wide_pair_biases_are_kept_up_to_the_threshold_and_left_out_above():
    from torch_geometric.data import Batch

    from nn_helpers import make_events

    batch = Batch.from_data_list(make_events((10, 25, 40)))
    default = _pairwise_multitask()
    assert default.backbones["masked_gt"].encoder.config.pair_event_wide_max_nodes == 1024
    at_40 = _pairwise_multitask(pair_event_wide_max_nodes=40)  # the largest event has 40 nodes: kept
    want = default.predict(batch)["label"]
    assert torch.equal(at_40.predict(batch)["label"], want)
    below = _pairwise_multitask(pair_event_wide_max_nodes=39)  # left out: as without the event-wide MLP
    got = below.predict(batch)["label"]
    assert not torch.allclose(got, want)
    below.backbones["masked_gt"].encoder.pair_global = None
    assert torch.equal(below.predict(batch)["label"], got)


def test_pair_event_wide_max_nodes_below_one_is_refused():
    import pytest

    from graphevent.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model\.masked_gt\.pair_event_wide_max_nodes: 0 must be >= 1$"):
        _pairwise_multitask(pair_event_wide_max_nodes=0)


def _whole_events(n: int, events: int = 2, seed: int = 0):
    """A batch of whole events: each ``n`` distinct random pixels of a 170 x 360 lattice (eta x phi), kNN graph."""
    from torch_geometric.data import Batch, Data

    from graphevent.nn.layers.knn import edge_features
    from nn_helpers import K

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(events):
        cells = torch.randperm(170 * 360, generator=g)[:n].sort().values
        pos = torch.stack([cells // 360 - 85, cells % 360 - 180], 1).float() * WHOLE_PIXEL
        x = torch.log1p(torch.rand(n, 3, generator=g) * 10)
        ei = knn_graph(pos, None, K, pixel_size=(WHOLE_PIXEL, WHOLE_PIXEL))
        out.append(Data(x=x, pos=pos, edge_index=ei, edge_attr=edge_features(pos, ei), y=torch.tensor([i % 2]),
                        targets=torch.tensor([[50.0 + i, 200.0 - i]]), event_id=torch.tensor([i])))
    return Batch.from_data_list(out)


WHOLE_PIXEL = 0.0174


def test_one_training_step_of_every_model_on_a_2000_node_event():
    """Every packaged model (tiny settings) takes one optimizer step on two whole events of
    2,000 nodes of a 170 x 360 image: finite loss and gradients, the parameters moved."""
    from dataclasses import replace

    from graphevent.nn import build_model, list_models
    from graphevent.nn.tasks import TaskConfig
    from nn_helpers import TINY, natural_stage, tiny_info

    info = replace(tiny_info(), pixel_size=(WHOLE_PIXEL, WHOLE_PIXEL), image_shape=(3, 170, 360))
    batch = _whole_events(2000)
    tasks = [TaskConfig("label", "classification")]
    for name, cls in list_models().items():
        if not cls.__module__.startswith("graphevent.nn.models."):
            continue  # registered by another test
        torch.manual_seed(0)
        model = build_model({"name": name, **TINY[name]}, info, tasks if cls.supports_tasks else None).train()
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss, _ = model.loss(batch, natural_stage(model))
        loss.backward()
        opt.step()
        assert torch.isfinite(loss), name
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), name
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters())), name
