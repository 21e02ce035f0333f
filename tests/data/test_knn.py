import numpy as np
import pytest
import torch

from graphevent.data.knn import (
    edge_features_np,
    knn_lattice_chunk,
    knn_neighbours,
    lattice_coords,
    neighbours_to_edge_index,
)
from graphevent.nn.layers.knn import edge_features, knn_graph


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
    # the number of events given (a fourth, empty one included) changes nothing
    assert torch.equal(knn_graph(torch.tensor(np.concatenate(pos)), batch, 8, num_events=3), ei)
    assert torch.equal(knn_graph(torch.tensor(np.concatenate(pos)), batch, 8, num_events=4), ei)
    feats = torch.tensor(rng.normal(size=(sum(sizes), 6)).astype(np.float32))  # feature space: topk path
    assert torch.equal(knn_graph(feats, batch, 8, num_events=3), knn_graph(feats, batch, 8))


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


def _brute_force(pos: np.ndarray, k: int) -> np.ndarray:
    """Reference: (distance, node index) order by a stable argsort of exact float64 distances."""
    n = len(pos)
    out = np.full((n, k), -1, np.int32)
    p = pos.astype(np.float64)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    m = max(0, min(k, n - 1))
    out[:, :m] = np.argsort(d2, axis=1, kind="stable")[:, :m]
    return out


def _lattice_events(rng, sizes, side=12, step=1.0, dup=0.2):
    """Events of nodes on a small pixel lattice: many equidistant pairs; some pixels twice."""
    events = []
    for n in sizes:
        pix = rng.integers(0, side, size=(n, 2)).astype(np.float64)
        twice = rng.random(n) < dup  # a second node at the same pixel (per-channel mode)
        pix[1:][twice[1:]] = pix[:-1][twice[1:]]
        events.append((pix - side / 2) * step)
    return events


@pytest.mark.parametrize("step", [1.0, 0.5])
@pytest.mark.parametrize("extra", [0, 4])
def test_chunk_knn_equals_brute_force_on_lattice_events(step, extra):
    from graphevent.data.knn import knn_chunk

    rng = np.random.default_rng(int(step * 10) + extra)
    sizes = [0, 1, 2, 5, 16, 17, 18, 40, 3, 90, 17, 0, 60]  # incl. events with <= k nodes
    events = _lattice_events(rng, sizes, step=step)
    pos, counts = np.concatenate(events), np.array(sizes)
    got = knn_chunk(pos, counts, 16, extra=extra)
    assert got.shape == (counts.sum(), 16) and got.dtype == np.int32
    off = np.concatenate([[0], np.cumsum(counts)])
    for e, p in enumerate(events):
        np.testing.assert_array_equal(got[off[e] : off[e + 1]], _brute_force(p, 16), err_msg=f"event {e}")
    # integer brute force on the lattice: same lists, also with events routed to the tree
    # (max_dense) and groups split into several batches (budget)
    coords = lattice_coords(pos)
    assert coords.dtype == np.int32
    np.testing.assert_array_equal(coords, pos / step)
    for kw in [{}, dict(max_dense=17, budget=50), dict(budget=1)]:
        np.testing.assert_array_equal(knn_lattice_chunk(coords, counts, 16, **kw), got)


def test_lattice_coords():
    assert lattice_coords(np.array([[1.0, -2.0], [3.0, 0.0]])).tolist() == [[1, -2], [3, 0]]
    assert lattice_coords(np.array([[0.5, -2.0], [3.0, 0.0]])).tolist() == [[1, -4], [6, 0]]
    assert lattice_coords(np.array([[0.25, 0.0]])) is None
    assert lattice_coords(np.array([[0.0174, 0.0]])) is None  # physical units: not a lattice


def test_chunk_knn_ties_go_to_lower_index():
    from graphevent.data.knn import knn_chunk

    # node 0 at the centre, nodes 1-4 at distance 1 (a tie of four), node 5 farther
    pos = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0], [3, 3]], np.float64)
    nbr = knn_chunk(pos, np.array([6]), 2)
    assert nbr[0].tolist() == [1, 2]
    assert nbr[5].tolist() == [1, 2]  # (0,1) and (1,0) both at sqrt(13): lower indices win
    assert nbr[1].tolist() == [0, 2]  # 0 at 1, then 2 and 4 tie at sqrt(2): 2 wins


def test_chunk_knn_does_not_depend_on_other_events():
    from graphevent.data.knn import knn_chunk

    rng = np.random.default_rng(3)
    sizes = [30, 7, 55, 19, 120]
    events = _lattice_events(rng, sizes, side=10)
    whole = knn_chunk(np.concatenate(events), np.array(sizes), 8)
    off = np.concatenate([[0], np.cumsum(sizes)])
    order = [4, 2, 0, 3, 1]  # another chunk composition: same events, other order
    shuffled = knn_chunk(np.concatenate([events[i] for i in order]), np.array([sizes[i] for i in order]), 8)
    soff = np.concatenate([[0], np.cumsum([sizes[i] for i in order])])
    for j, e in enumerate(order):
        np.testing.assert_array_equal(shuffled[soff[j] : soff[j + 1]], whole[off[e] : off[e + 1]])
        np.testing.assert_array_equal(knn_chunk(events[e], np.array([sizes[e]]), 8), whole[off[e] : off[e + 1]])


def test_per_channel_nodes_at_one_pixel_are_neighbours_first():
    from graphevent.data.transforms import ImageToPoints, KNNGraph

    rng = np.random.default_rng(1)
    img = np.where(rng.random((4, 3, 15, 15)) < 0.15, rng.random((4, 3, 15, 15)), 0).astype(np.float32)
    img[:, :, 7, 7] = 1.0  # all three channels at one pixel: three nodes at distance 0
    pc = ImageToPoints([0, 0, 0], [1, 1, 1], (0.0174, 0.0174), mode="per_channel")(img)
    nbr = KNNGraph(6)(pc.pos, pc.counts, pc.lattice_pos)
    off = pc.offsets
    for e in range(4):
        lat = pc.lattice_pos[off[e] : off[e + 1]]
        np.testing.assert_array_equal(nbr[off[e] : off[e + 1]], _brute_force(lat, 6))
        centre = np.flatnonzero((lat == 0).all(1))  # the three channels' nodes at pixel (7, 7)
        assert len(centre) == 3
        for i in centre:
            assert set(nbr[off[e] + i, :2].tolist()) == set(centre.tolist()) - {i}


def test_lattice_knn_wide_images_use_int32_squared_distances():
    # a 300-pixel span: squared distances above int16, still exact
    rng = np.random.default_rng(11)
    sizes = [40, 9, 70]
    events = [rng.integers(-150, 150, size=(n, 2)).astype(np.float64) for n in sizes]
    events[0][:2] = [[-150, -150], [149, 149]]
    got = knn_lattice_chunk(lattice_coords(np.concatenate(events)), np.array(sizes), 12)
    off = np.concatenate([[0], np.cumsum(sizes)])
    for e, p in enumerate(events):
        np.testing.assert_array_equal(got[off[e] : off[e + 1]], _brute_force(p, 12))
