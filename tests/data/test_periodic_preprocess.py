"""A phi that wraps, data side: the data config declares it, the dataset records it, and
preprocessing's kNN and edge features measure across the seam."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from graphevent.config.base import from_dict, to_dict
from graphevent.config.data import DataConfig
from graphevent.data.dataset import GraphDataset
from graphevent.data.info import DatasetInfo
from graphevent.data.knn import edge_features_np, knn_chunk, knn_lattice_chunk, knn_neighbours, lattice_coords
from graphevent.data.preprocess import config_hash, preprocess
from graphevent.data.testing import tiny_data_config, write_ml4sci_hdf5
from graphevent.data.transforms import ImageToPoints, KNNGraph
from graphevent.errors import ConfigError

TWO_PI = 2 * math.pi
H, W = 8, 360  # full detector: 360 phi columns of 2 pi / 360
PIX = TWO_PI / W
PERIODS = (0.0, TWO_PI)


def full_detector_config(k: int = 4, **extra) -> DataConfig:
    raw = {
        "name": "full",
        "reader": {"format": "ml4sci_hdf5", "image_key": "X", "label_key": "y", "target_keys": []},
        "classes": ["a", "b"],
        "channels": [{"name": "ecal"}],
        "image": {"height": H, "width": W, "pixel_size": [PIX, PIX]},
        "graph": {"k": k},
        "geometry": {"periodic": {"phi": TWO_PI}},
        "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        **extra,
    }
    return from_dict(DataConfig, raw, "full.yaml")


def seam_images(n: int = 4, roll: int = 0) -> dict[str, np.ndarray]:
    """Events with deposits in columns 0 and W - 1 (phi = -+3.133, across the seam), and a
    few far from it; ``roll`` rotates every image by that many columns."""
    rng = np.random.default_rng(0)
    X = np.zeros((n, H, W, 1), np.float32)
    for i in range(n):
        X[i, 3, 0, 0], X[i, 3, W - 1, 0], X[i, 4, W - 1, 0] = 5.0, 4.0, 3.0
        for c in rng.choice(np.arange(100, 260), 6, replace=False):
            X[i, rng.integers(H), c, 0] = rng.uniform(1, 9)
    X = np.roll(X, roll, axis=2)
    return {"X": X, "y": (np.arange(n) % 2).astype(np.float32)}


# ----------------------------------------------------------------------------- the config
def test_jet_crop_configs_record_no_geometry_and_keep_their_dataset_id():
    cfg = tiny_data_config()
    assert cfg.periods is None and "geometry" not in to_dict(cfg)
    periodic = from_dict(DataConfig, {**to_dict(cfg), "image": {"height": 125, "width": 125, "pixel_size": [TWO_PI / 125] * 2},
                                      "geometry": {"periodic": {"phi": TWO_PI}}}, "x")
    assert to_dict(periodic)["geometry"] == {"periodic": {"phi": TWO_PI}}
    assert config_hash(periodic, [], None) != config_hash(cfg, [], None)


def test_image_period_is_the_image_span():
    cfg = full_detector_config()
    assert cfg.periods == (0.0, W * PIX)
    # a rounded pixel size: the span (what the lattice wraps at) is recorded, within 1e-4 of 2 pi
    rounded = full_detector_config(image={"height": H, "width": W, "pixel_size": [0.0174533, 0.0174533]})
    assert rounded.periods == (0.0, W * 0.0174533)


@pytest.mark.parametrize("geometry, message", [
    ({"periodic": {"theta": 1.0}}, "full.yaml.geometry.periodic: unknown axis 'theta'; expected one of eta, phi"),
    ({"periodic": {"phi": -1.0}}, "full.yaml.geometry.periodic.phi: invalid value -1.0; expected a period > 0 (2 pi for phi)"),
    ({"periodic": {"phi": 3.0}}, "full.yaml.geometry.periodic.phi: 3.0 does not match the image's phi span 360 x pixel_size[1] = 6.28319; "
                                 "expected a period equal to that span (a full-detector image)"),
])
def test_bad_geometry_is_one_line_naming_the_key(geometry, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        full_detector_config(geometry=geometry)


def test_torch_cluster_cannot_wrap():
    with pytest.raises(ConfigError, match=re.escape("full.yaml.graph.knn_backend: 'torch_cluster' cannot wrap a periodic axis")):
        full_detector_config(graph={"k": 4, "knn_backend": "torch_cluster"})


# ----------------------------------------------------------------------------- positions and kNN
def test_full_detector_positions_stay_in_the_periodic_range():
    pc = ImageToPoints([0.0], [1], (PIX, PIX))(seam_images(1)["X"].transpose(0, 3, 1, 2))
    phi = pc.pos[:, 1].astype(np.float64)
    assert phi.min() == pytest.approx(-(W - 1) / 2 * PIX) and phi.max() == pytest.approx((W - 1) / 2 * PIX)
    assert np.all(np.abs(phi) < math.pi)


def test_seam_deposits_are_neighbours_in_every_preprocessing_knn():
    pos = np.array([[0.0, 3.13], [0.0, -3.13], [0.0, 0.0], [0.5, 1.0]], np.float32)
    want = [[1], [0], [3], [2]]
    assert knn_chunk(pos, np.array([4]), 1, periods=PERIODS).tolist() == want
    assert knn_chunk(pos, np.array([4]), 1).tolist() == [[3], [2], [3], [2]]  # without periods: 6.26 apart
    for backend in ("scipy", "torch"):
        assert knn_neighbours(pos, 1, backend, PERIODS).tolist() == want
    coords = np.array([[0, 0], [0, W - 1], [0, 180], [3, 100]], np.int32)
    assert knn_lattice_chunk(coords, np.array([4]), 1, periods=(0, W)).tolist() == want
    feats = edge_features_np(pos, np.array([[1], [0]]), PERIODS)
    np.testing.assert_allclose(feats, [[0.0, TWO_PI - 6.26, TWO_PI - 6.26]], atol=1e-6)


@pytest.mark.parametrize("roll", [1, 97, 359])
def test_lattice_and_tree_agree_and_a_roll_leaves_the_lists_unchanged(roll):
    """Random lattice events (full of ties): the integer brute force and the periodic tree give
    the same lists, and rotating every column (node order kept) changes none of them."""
    rng = np.random.default_rng(roll)
    counts = np.array([5, 40, 17, 60])
    coords = np.concatenate([
        np.stack([rng.integers(0, H, n), rng.integers(0, W, n)], 1) for n in counts
    ]).astype(np.int32)
    lists = knn_lattice_chunk(coords, counts, 8, periods=(0, W))
    assert np.array_equal(knn_chunk(coords.astype(np.float64), counts, 8, periods=(0, W)), lists)
    rolled = coords.copy()
    rolled[:, 1] = (rolled[:, 1] + roll) % W
    assert np.array_equal(knn_lattice_chunk(rolled, counts, 8, periods=(0, W)), lists)
    assert np.array_equal(knn_chunk(rolled.astype(np.float64), counts, 8, periods=(0, W)), lists)


def test_knn_transform_wraps_image_nodes_on_the_lattice():
    pc = ImageToPoints([0.0], [1], (PIX, PIX))(seam_images(1)["X"].transpose(0, 3, 1, 2))
    nbr = KNNGraph(1, periods=PERIODS, lattice_periods=(0.0, float(W)))(pc.pos, pc.counts, pc.lattice_pos)
    phi = pc.pos[:, 1]
    left = int(np.argmin(phi))  # column 0, row 3
    right = int(np.flatnonzero(np.isclose(pc.pos[:, 0], pc.pos[left, 0]) & (phi > 3))[0])  # column W - 1, row 3
    assert nbr[left, 0] == right and nbr[right, 0] == left
    assert "periods=(0.0, 6.28" in repr(KNNGraph(1, periods=PERIODS, lattice_periods=(0.0, float(W))))


# ----------------------------------------------------------------------------- the dataset
def test_preprocessed_full_detector_dataset_records_its_periods_and_wraps(tmp_path):
    raw = write_ml4sci_hdf5(tmp_path / "full.h5", seam_images())
    out = preprocess([raw], full_detector_config(), tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["periods"] == [0.0, W * PIX]
    assert manifest["config"]["geometry"] == {"periodic": {"phi": TWO_PI}}
    info = DatasetInfo.from_dir(tmp_path / "ds")
    assert info.periods == (0.0, W * PIX)
    assert DatasetInfo(["ecal"], ["a", "b"], periods=[0, 6.5]).periods == (0.0, 6.5)  # from a JSON list
    ev = GraphDataset(out if not isinstance(out, dict) else tmp_path / "ds", "train")[0]
    dphi = ev.edge_attr[:, 1].abs()
    assert float(dphi.max()) <= math.pi  # no edge measures the long way round
    seam = (ev.pos[:, 1].abs() > 3.1)
    src, dst = ev.edge_index
    across = seam[src] & seam[dst] & (ev.pos[src, 1] * ev.pos[dst, 1] < 0)
    assert int(across.sum()) >= 2  # the seam deposits are each other's neighbours
    np.testing.assert_allclose(ev.edge_attr[across, 1].abs().numpy(), PIX, rtol=1e-4)


def test_a_rolled_file_gives_the_same_graphs(tmp_path):
    """Every image rotated by 120 columns: per event the same nodes (by pixel), each with
    neighbours at the same distances and the same (deta, dphi, dR) of its nearest one.
    (Among equidistant neighbours the lower node index wins, and a roll reorders the nodes.)"""
    cfg = full_detector_config()
    found = []
    for roll in (0, 120):
        raw = write_ml4sci_hdf5(tmp_path / f"r{roll}.h5", seam_images(roll=roll))
        preprocess([raw], cfg, tmp_path / f"ds{roll}")
        ds = GraphDataset(tmp_path / f"ds{roll}", "train")
        per_event = []
        for i in range(len(ds)):
            ev = ds[i]
            col = (np.rint(ev.pos[:, 1].numpy() / PIX + (W - 1) / 2).astype(int) - roll) % W
            row = np.rint(ev.pos[:, 0].numpy() / PIX + (H - 1) / 2).astype(int)
            key = row * W + col
            src, dst = ev.edge_index.numpy()
            nodes = {}
            for node in range(ev.num_nodes):
                e = np.flatnonzero(dst == node)
                e = e[np.lexsort((key[src[e]], np.round(ev.edge_attr[e, 2].numpy(), 4)))]
                nodes[int(key[node])] = (ev.edge_attr[e, 2].numpy(), ev.edge_attr[e[0]].numpy())
            per_event.append(nodes)
        found.append(per_event)
    assert len(found[0]) == len(found[1]) == 4
    for a, b in zip(*found):
        assert sorted(a) == sorted(b)
        for node in a:
            np.testing.assert_allclose(a[node][0], b[node][0], atol=1e-5)  # neighbours' distances
            np.testing.assert_allclose(a[node][1], b[node][1], atol=1e-5)  # the nearest one's (deta, dphi, dR)


def test_point_inputs_are_wrapped_into_range_and_linked_across_the_seam():
    """Hits (point form) at phi = 3.13 and 3.17 (= -3.113 wrapped) are neighbours, with a
    small dphi; positions come back inside [-pi, pi]."""
    from graphevent.config.base import load_yaml
    from graphevent.config.shipped import resolve_config_path
    from graphevent.data.preprocess import build_graphs
    from graphevent.io.base import EventChunk

    raw = load_yaml(resolve_config_path("root_hits", "data"))
    cfg = from_dict(DataConfig, {**raw, "graph": {"k": 1}, "geometry": {"periodic": {"phi": TWO_PI}}}, "hits.yaml")

    class Hits:
        read_slab = 0

        def read(self, start, stop):
            values = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [1.0, 0, 0]], np.float32)
            return EventChunk(labels=np.array([0]), targets=np.zeros((1, 2), np.float32), index=np.array([0]),
                              values=values, eta=np.array([0.0, 0.0, 0.4, 0.5], np.float32),
                              phi=np.array([3.13, 3.17, 0.0, 0.1], np.float32), counts=np.array([4]))

    g = build_graphs(Hits(), "hits.root", 0, 1, cfg)
    np.testing.assert_allclose(g.pos[:, 1], [3.13, 3.17 - TWO_PI, 0.0, 0.1], atol=1e-6)
    assert g.nbr[:, 0].tolist() == [1, 0, 3, 2]
    plain = build_graphs(Hits(), "hits.root", 0, 1, from_dict(DataConfig, {**raw, "graph": {"k": 1}}, "hits.yaml"))
    assert plain.pos[1, 1] == np.float32(3.17) and plain.nbr[:, 0].tolist() == [1, 0, 3, 2]
    np.testing.assert_allclose(edge_features_np(g.pos, np.array([[1], [0]]), PERIODS)[0, 1], 0.04, atol=1e-5)
