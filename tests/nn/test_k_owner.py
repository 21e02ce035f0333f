"""k has one owner: the model's ``k`` wins over the dataset's ``graph.k``, and the rebuild says so once."""

import logging

import torch

from graphevent.config.data import DEFAULT_K, GraphConfig
from graphevent.nn.layers.knn import edge_features, knn_graph
from graphevent.nn import batch as nn_batch
from graphevent.nn.models.particlenet import ParticleNetConfig
from nn_helpers import K, build_tiny, make_batch


def test_the_default_k_is_written_once():
    assert GraphConfig().k == DEFAULT_K == ParticleNetConfig().k


def test_model_k_wins_and_the_rebuild_is_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(nn_batch, "_REBUILDS_NOTED", set())
    batch = make_batch()
    stored = (batch.edge_index.clone(), batch.edge_attr.clone())
    with caplog.at_level(logging.WARNING, logger="graphevent"):
        same = nn_batch.position_graph(batch, K, K)
        assert caplog.records == []
        assert torch.equal(same[0], stored[0]) and torch.equal(same[1], stored[1])
        for _ in range(3):
            edge_index, edge_attr = nn_batch.position_graph(batch, 4, K)
    assert [r.getMessage() for r in caplog.records] == [
        f"model.k = 4 differs from the dataset's graph.k = {K}: the model's k wins and its (eta, phi) graph is "
        "rebuilt at every forward (preprocess with --set graph.k=4 to reuse the stored one)"
    ]
    expected = knn_graph(batch.pos, batch.batch, 4, batch.num_graphs)
    assert torch.equal(edge_index, expected)
    assert torch.allclose(edge_attr, edge_features(batch.pos, expected))
    assert edge_index.shape[1] == 4 * batch.num_nodes  # every event has > 4 nodes


def test_a_model_with_another_k_runs_and_logs_once(caplog, monkeypatch):
    """The flat-graph encoder (masked_gt) reuses the stored graph when its k is the dataset's;
    the padded models (ParticleNet, edgeconv) always find their (eta, phi) neighbours themselves."""
    monkeypatch.setattr(nn_batch, "_REBUILDS_NOTED", set())
    model = build_tiny("masked_gt_ae", k=4).eval()
    with caplog.at_level(logging.WARNING, logger="graphevent"):
        model.predict(make_batch())
        model.predict(make_batch(seed=1))
    assert len(caplog.records) == 1 and "model.k = 4" in caplog.records[0].getMessage()
