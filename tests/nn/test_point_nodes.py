"""PointNodes (the points-input export's front end) makes the nodes preprocessing makes of a
reader's points (``build_graphs`` on a ``root_hits`` config): same count, order, positions and
features, node cap ties, signed channels, NaN values, padding and periodic wrap included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from graphevent.config.base import from_dict, load_yaml
from graphevent.config.data import DataConfig
from graphevent.config.shipped import resolve_config_path
from graphevent.data.preprocess import build_graphs
from graphevent.data.transforms.image_to_points import points_from_hits
from graphevent.evaluate.export import example_points
from graphevent.io.base import EventChunk
from graphevent.nn.layers.point_nodes import PointNodes

THRESHOLDS, SIGNED = [0.0, 0.5, 0.1], [False, True, False]
SCALES, TRANSFORMS = [1.0, 0.5, 2.0], ["log1p", "none", "none"]
SIZES = [30, 0, 1, 12, 40, 7, 25, 3]


class PaddedReader:
    """A point-form reader serving padded events (the rows before ``n_points``) as ``EventChunk``."""

    read_slab = None

    def __init__(self, points: np.ndarray, n_points: np.ndarray) -> None:
        self.points, self.n = points, n_points

    def read(self, start: int, stop: int) -> EventChunk:
        rows = np.concatenate([self.points[b, :self.n[b]] for b in range(start, stop)])
        return EventChunk(labels=np.zeros(stop - start, np.int64), targets=np.zeros((stop - start, 2), np.float32),
                          index=np.arange(start, stop), values=rows[:, :3].copy(), eta=rows[:, 3].copy(),
                          phi=rows[:, 4].copy(), counts=self.n[start:stop].astype(np.int64))


def _preprocessed(points: np.ndarray, n_points: np.ndarray, cap: int, periods=None):
    """What ``graphevent preprocess`` makes of these points under a ``root_hits`` config with
    these channels (bad_values: zero, empty events kept): (x, pos, counts)."""
    raw = load_yaml(resolve_config_path("root_hits", "data"))
    channels = [{"name": n, "threshold": t, "signed": sg, "scale": sc, "transform": tr}
                for n, t, sg, sc, tr in zip(("tracks", "ecal", "hcal"), THRESHOLDS, SIGNED, SCALES, TRANSFORMS)]
    geometry = {"geometry": {"periodic": {"phi": periods[1]}}} if periods else {}
    cfg = from_dict(DataConfig, {**raw, "channels": channels, "graph": {"k": 4, "max_nodes": cap}, "bad_values": "zero",
                                 **geometry}, "hits.yaml")
    g = build_graphs(PaddedReader(points, n_points), "hits.root", 0, len(n_points), cfg, keep_empty=True)
    return g.x, g.pos, g.counts


def _cut_ties(points: np.ndarray, n_points: np.ndarray, cap: int) -> int:
    """Events whose node cap falls between nodes of equal summed value."""
    rows = np.concatenate([points[b, :n] for b, n in enumerate(n_points)])
    values = np.where(np.isfinite(rows[:, :3]), rows[:, :3], 0).astype(np.float32)
    pc = points_from_hits(values, rows[:, 3], rows[:, 4], n_points, THRESHOLDS, 0, SIGNED)
    off = pc.offsets
    sums = [np.sort(pc.values[off[b]:off[b + 1]].sum(1))[::-1] for b in range(len(n_points))]
    return sum(len(s) > cap and s[cap - 1] == s[cap] for s in sums)


def _events(seed: int = 0, phi_shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a few value levels (ties), an empty event, a NaN value in event 3, NaN padding;
    positions shifted in phi by ``phi_shift`` (across the seam for a periodic phi)."""
    points, n = example_points(THRESHOLDS, SIGNED, SIZES, seed=seed, bad=(3,))
    points[..., 4] += phi_shift
    return points, n


@pytest.mark.parametrize("cap", [0, 5, 16])
def test_point_nodes_equal_preprocessing(cap):
    points, n = _events()
    x, pos, counts = _preprocessed(points.numpy(), n.numpy(), cap)
    feats, positions, mask, got_counts, bad = PointNodes(THRESHOLDS, SIGNED, SCALES, TRANSFORMS, cap)(points, n)
    assert got_counts.tolist() == counts.tolist()
    assert counts[1:3].tolist() == [0, 1] and counts[4] < n[4]  # an empty event, one point, points dropped
    if cap:
        assert _cut_ties(points.numpy(), n.numpy(), cap) >= 3  # the cap keeps some of several equal sums
    assert bad.tolist() == [i == 3 for i in range(len(SIZES))]
    assert feats.shape[1] == max(counts.max(), 2) and mask.sum(1).tolist() == counts.tolist()
    off = np.concatenate([[0], np.cumsum(counts)])
    for b in range(len(SIZES)):
        k = counts[b]
        np.testing.assert_array_equal(positions[b, :k].numpy(), pos[off[b]:off[b + 1]])
        np.testing.assert_allclose(feats[b, :k].numpy(), x[off[b]:off[b + 1]], rtol=1e-6, atol=1e-7)
        assert not mask[b, k:].any() and (feats[b, k:] == 0).all() and (positions[b, k:] == 0).all()


def test_the_cap_keeps_equal_sums_in_point_order():
    """Nine points whose values sum to 2 (in different channels), a cap of 4, two larger ones:
    the larger two, then the first two of the equal ones, in point order."""
    values = np.zeros((1, 11, 5), np.float32)
    values[0, :9, 0] = 2.0
    values[0, 1::3, :2] = [1.5, 0.5]  # 2 as well
    values[0, [4, 9, 10], 0] = [3.0, 5.0, 1.0]
    values[0, :, 3:] = np.arange(22, dtype=np.float32).reshape(11, 2) * 0.01
    feats, positions, mask, counts, _ = PointNodes([0.0] * 3, [False] * 3, [1.0] * 3, ["none"] * 3, 4)(
        torch.from_numpy(values), torch.tensor([11]))
    kept = (positions[0, :4, 0] / 0.02).round().int().tolist()
    assert counts.tolist() == [4] and kept == [0, 1, 4, 9]


def test_periodic_positions_are_wrapped_as_preprocessing_wraps_them():
    periods = (0.0, 2 * np.pi)
    points, n = _events(seed=2, phi_shift=3.0)  # phi up to 3.4: past pi
    x, pos, counts = _preprocessed(points.numpy(), n.numpy(), 0, periods)
    feats, positions, mask, _, _ = PointNodes(THRESHOLDS, SIGNED, SCALES, TRANSFORMS, 0, periods)(points, n)
    assert (pos[:, 1] < -2.5).sum() >= 10  # wrapped
    np.testing.assert_array_equal(positions[mask].numpy(), pos)


def test_torchscript_equals_eager():
    points, n = _events(seed=1)
    module = PointNodes(THRESHOLDS, SIGNED, SCALES, TRANSFORMS, 5, (0.0, 2 * np.pi))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    for a, b in zip(scripted(points, n), module(points, n)):
        assert torch.equal(a, b)
    small = scripted(points[:1, :0], torch.zeros(1, dtype=torch.int64))  # no point at all: two empty slots
    assert small[0].shape == (1, 2, 3) and small[3].tolist() == [0]
