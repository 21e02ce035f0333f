import numpy as np
import pytest
import torch

from graphevent.data.knn import edge_features, edge_features_np, knn_graph, knn_neighbours, neighbours_to_edge_index


@pytest.mark.parametrize("n", [30, 200])
def test_scipy_and_torch_backends_agree(n):
    pos = np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32)
    a = knn_neighbours(pos, 16, "scipy")
    b = knn_neighbours(pos, 16, "torch")
    # same neighbour sets (continuous random positions: no ties)
    assert np.array_equal(np.sort(a, 1), np.sort(b, 1))
    # brute force reference
    d = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(np.sort(a, 1), np.sort(np.argsort(d, 1)[:, :16], 1))
    assert not (a == np.arange(n)[:, None]).any()  # no self loops


def test_small_event_connects_to_all_others():
    pos = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    nbr = knn_neighbours(pos, 16)
    assert nbr.shape == (3, 16)
    assert (nbr[:, 2:] == -1).all()
    assert [sorted(r[:2]) for r in nbr.tolist()] == [[1, 2], [0, 2], [0, 1]]
    assert (knn_neighbours(pos[:1], 16) == -1).all()


def test_duplicate_positions_never_self():
    pos = np.zeros((20, 2), np.float32)  # all nodes at one point (per_channel mode at one pixel)
    nbr = knn_neighbours(pos, 5)
    assert not (nbr == np.arange(20)[:, None]).any()
    assert (nbr >= 0).all()


def test_edge_index_and_features():
    pos = np.array([[0, 0], [3, 4]], np.float32)
    ei = neighbours_to_edge_index(knn_neighbours(pos, 4))
    assert ei.tolist() == [[1, 0], [0, 1]]  # source (neighbour) row first
    np.testing.assert_allclose(edge_features_np(pos, ei), [[3, 4, 5], [-3, -4, 5]])
    t = edge_features(torch.tensor(pos), torch.tensor(ei))
    np.testing.assert_allclose(t.numpy(), edge_features_np(pos, ei))


def test_batched_torch_knn_equals_per_event():
    rng = np.random.default_rng(0)
    sizes = [5, 40, 17]
    pos = [rng.normal(size=(s, 2)).astype(np.float32) for s in sizes]
    batch = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    ei = knn_graph(torch.tensor(np.concatenate(pos)), batch, 8)
    assert (batch[ei[0]] == batch[ei[1]]).all()  # never across events
    assert (ei[0] != ei[1]).all()
    off = np.cumsum([0] + sizes)
    for e, p in enumerate(pos):
        ref = neighbours_to_edge_index(knn_neighbours(p, 8), offset=off[e])
        got = ei[:, (ei[1] >= off[e]) & (ei[1] < off[e + 1])].numpy()
        assert sorted(map(tuple, got.T)) == sorted(map(tuple, ref.T))


def test_chunk_knn_equals_per_event():
    from graphevent.data.knn import knn_chunk

    rng = np.random.default_rng(5)
    counts = np.array([0, 1, 3, 17, 40, 16, 2])
    pos = rng.normal(scale=0.5, size=(counts.sum(), 2)).astype(np.float32)
    got = knn_chunk(pos, counts, 16)
    off = np.concatenate([[0], np.cumsum(counts)])
    for e in range(len(counts)):
        ref = knn_neighbours(pos[off[e] : off[e + 1]], 16)
        g = got[off[e] : off[e + 1]]
        assert np.array_equal(np.sort(g, 1), np.sort(ref, 1)), e
