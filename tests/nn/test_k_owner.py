"""k has one owner: the model's ``k``. Models find their (eta, phi) neighbours themselves
(:func:`~graphevent.nn.layers.dense_knn.dense_knn`), the dataset's stored graph when the k is
the same, their own otherwise."""

import torch

from graphevent.config.data import DEFAULT_K, GraphConfig
from graphevent.nn.batch import padded_nodes, stored_neighbours
from graphevent.nn.layers.dense_knn import dense_knn
from graphevent.nn.layers.knn import knn_graph
from graphevent.nn.models.particlenet import ParticleNetConfig
from nn_helpers import K, build_tiny, make_batch


def test_the_default_k_is_written_once():
    assert GraphConfig().k == DEFAULT_K == ParticleNetConfig().k


def test_the_models_neighbours_are_the_stored_graph_at_the_same_k():
    batch = make_batch()
    assert torch.equal(knn_graph(batch.pos, batch.batch, K, batch.num_graphs), batch.edge_index)
    _, pos, mask = padded_nodes(batch)
    idx, valid = dense_knn(pos, mask, 4, True)
    assert valid[mask].all() and idx.shape[-1] == 4  # every event has > 4 nodes
    assert knn_graph(batch.pos, batch.batch, 4, batch.num_graphs).shape == (2, 4 * batch.num_nodes)


def test_models_with_another_k_run():
    for name in ("particlenet", "masked_gt_ae"):
        out = build_tiny(name, k=4).eval().predict(make_batch())
        assert all(torch.isfinite(v).all() for v in out.values())


def test_the_stored_graph_as_slots_equals_the_neighbours_found():
    """The eager models read the stored graph (no B x M x M distances) where it applies: the
    same slots, in the same order, as dense_knn finds; otherwise None (found instead)."""
    for seed in range(3):
        batch = make_batch(seed=seed)
        _, pos, mask = padded_nodes(batch)
        idx, valid = dense_knn(pos, mask, K, True)
        got = stored_neighbours(batch, K, K)
        assert got is not None and torch.equal(got[1], valid) and torch.equal(got[0][valid], idx[valid])
    assert stored_neighbours(batch, 4, K) is None  # the model's k differs from the dataset's
    shuffled = batch.clone()
    shuffled.edge_index = batch.edge_index.flip(1)  # not node by node
    assert stored_neighbours(shuffled, K, K) is None
