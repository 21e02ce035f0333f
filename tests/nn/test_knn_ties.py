"""One kNN tie rule everywhere: (lattice distance, node index), in preprocessing
(:mod:`graphevent.data.knn`), the graph models (:func:`knn_graph`) and the exported padded
models (:func:`dense_knn`, eager, TorchScript and ONNX Runtime)."""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest
import torch

from graphevent.data.knn import knn_chunk, knn_lattice_chunk, lattice_coords
from graphevent.data.transforms.knn_graph import KNNGraph
from graphevent.nn.layers.dense_knn import dense_knn, squared_position_distances
from graphevent.nn.layers.knn import knn_graph

PIXEL = (0.0174, 0.0174)
ONNX_MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]


def _positions(lattice: np.ndarray, pixel=PIXEL) -> np.ndarray:
    """float32 (eta, phi) of lattice points, as preprocessing writes ``pos``."""
    return np.stack([lattice[:, 0] * pixel[0], lattice[:, 1] * pixel[1]], axis=1).astype(np.float32)


def _graph_lists(edge_index: torch.Tensor, n: int) -> list[list[int]]:
    """Each node's neighbours in edge order (knn_graph: k per node, nearest first)."""
    out: list[list[int]] = [[] for _ in range(n)]
    for j, i in edge_index.T.tolist():
        out[i].append(j)
    return out


# a pixel far from the image centre, its 8 neighbours at distances 1 and sqrt(2), node order shuffled
CROSS = np.array([[37, -23], [38, -22], [36, -23], [37, -22], [38, -23], [36, -24], [37, -24], [36, -22], [38, -24]],
                 np.float64)


def test_equidistant_pixels_go_to_the_lower_node_index():
    pos = torch.from_numpy(_positions(CROSS))
    d = squared_position_distances(pos[None], PIXEL)[0, 0]
    assert d.dtype == torch.float64 and d[1:].tolist() == [2, 1, 1, 1, 2, 1, 2, 2]
    want = [[2, 3, 4], [3, 4, 0], [0, 5, 7]]  # node 0: distance 1 at 2, 3, 4, 6; the lower indices win
    pre = knn_lattice_chunk(lattice_coords(CROSS), np.array([9]), 3)
    assert pre[:3].tolist() == want
    assert np.array_equal(knn_chunk(CROSS, np.array([9]), 3), pre)  # the tree path, same lists
    assert _graph_lists(knn_graph(pos, None, 3, 1, PIXEL), 9)[:3] == want
    mask = torch.ones(1, 9, dtype=torch.bool)
    idx, valid = dense_knn(pos[None], mask, 3, True, False, PIXEL)  # its ONNX form: test_onnx_runtime_keeps_the_tie_rule
    assert valid.all() and idx[0, :3].tolist() == want
    # the float32 positions alone order these ties by their rounding: node 0 gets 8 before 6
    assert _graph_lists(knn_graph(pos, None, 3, 1), 9)[0] != want[0]


def _random_lattice_events(seed: int, sizes: list[int], half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lattice positions (distinct pixels, anywhere on a 125 x 125 image) of events of ``sizes``."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in sizes:
        cells = rng.choice(40 * 40, size=n, replace=False)
        rc = np.stack([cells // 40, cells % 40], axis=1) + rng.integers(-62, 23, size=2)
        parts.append(rc + (0.5 if half else 0.0))
    return np.concatenate(parts).astype(np.float64), np.array(sizes)


@pytest.mark.parametrize("pixel, half", [(PIXEL, False), (PIXEL, True), ((0.03, 0.03), False)])
def test_graph_models_pick_the_preprocessing_neighbours(pixel, half):
    """Random lattice events (dense clusters: many ties) on square pixels, pixel and
    half-pixel (collapsed cell) centres: the stored lists, in order."""
    sizes = [1, 2, 9, 40, 70]
    lattice, counts = _random_lattice_events(3, sizes, half)
    aspect = pixel[1] / pixel[0]
    lattice_pos = np.stack([lattice[:, 0], lattice[:, 1] * aspect if aspect != 1.0 else lattice[:, 1]], axis=1)
    stored = KNNGraph(8)(None, counts, lattice_pos)
    pos = torch.from_numpy(_positions(lattice, pixel))
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.from_numpy(counts))
    start = np.repeat(np.cumsum(counts) - counts, counts)
    want = [[j + s for j in row if j >= 0] for row, s in zip(stored.tolist(), start)]
    assert _graph_lists(knn_graph(pos, batch, 8, len(sizes), pixel), len(pos)) == want
    dense = torch.zeros(len(sizes), max(sizes), 2)
    mask = torch.arange(max(sizes))[None] < torch.from_numpy(counts)[:, None]
    dense[mask] = pos
    idx, valid = dense_knn(dense, mask, 8, True, False, pixel)
    got = [[int(j) + s for j, v in zip(i_row, v_row) if v] for i_row, v_row, s in zip(idx[mask], valid[mask], start)]
    assert got == want
    assert _graph_lists(knn_graph(pos, batch, 8, len(sizes)), len(pos)) != want  # float32 rounding alone breaks ties


def test_positions_off_the_lattice_are_kept():
    """An augmentation's rotated positions are not moved to pixels: distances in eta-pixel units."""
    g = torch.Generator().manual_seed(0)
    pos = (torch.rand(2, 30, 2, generator=g) - 0.5) * 0.8
    torch.testing.assert_close(squared_position_distances(pos, PIXEL) * PIXEL[0] ** 2, squared_position_distances(pos),
                               rtol=1e-12, atol=1e-15)


class _KNN(torch.nn.Module):
    """dense_knn as a module, to script and export."""

    def __init__(self) -> None:
        super().__init__()
        self.onnx = False

    def forward(self, pos: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_knn(pos, mask, 3, True, self.onnx, (0.0174, 0.0174))


def test_torchscript_keeps_the_tie_rule():
    pos = torch.from_numpy(_positions(CROSS))[None]
    mask = torch.ones(1, 9, dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: deprecated, still the C++ loader's format
        scripted = torch.jit.script(_KNN())
    assert scripted(pos, mask)[0][0, :3].tolist() == [[2, 3, 4], [3, 4, 0], [0, 5, 7]]


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
def test_onnx_runtime_keeps_the_tie_rule(tmp_path):
    """ONNX Runtime's TopK takes equidistant neighbours in node order, as the stable sort."""
    import onnxruntime as ort
    from torch.export import Dim

    lattice, counts = _random_lattice_events(4, [60, 33, 5])
    dense = torch.zeros(3, 60, 2)
    mask = torch.arange(60)[None] < torch.from_numpy(counts)[:, None]
    dense[mask] = torch.from_numpy(_positions(lattice))
    module = _KNN()
    module.onnx = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (dense, mask), dynamo=True, input_names=["pos", "mask"],
                                    dynamic_shapes={"pos": {0: Dim("b"), 1: Dim("n")}, "mask": {0: Dim("b"), 1: Dim("n")}})
    program.save(str(tmp_path / "knn.onnx"))
    session = ort.InferenceSession(str(tmp_path / "knn.onnx"), providers=["CPUExecutionProvider"])
    idx, valid = session.run(None, {"pos": dense.numpy(), "mask": mask.numpy()})
    want_idx, want_valid = dense_knn(dense, mask, 3, True, False, PIXEL)
    assert np.array_equal(valid, want_valid.numpy())
    assert np.array_equal(np.where(valid, idx, -1), torch.where(want_valid, want_idx, -1).numpy())


def test_mirror_image_neighbours_tie_exactly_with_non_square_pixels():
    """Whole-event images have 0.0174 x 2pi/360 pixels: the phi difference is scaled after it is
    taken, so the neighbours one pixel left and right of a node are exactly equidistant (scaling
    the positions first left them 1.4e-14 apart, and the exported kNN then picked the other one)."""

    pix = (0.0174, 2 * math.pi / 360)
    cols = torch.tensor([100.0, 99.0, 101.0, 98.0, 102.0]) * pix[1]
    x = torch.stack([torch.zeros(5), cols], dim=-1)[None].float()
    d = squared_position_distances(x, pix, (0.0, 2 * math.pi))[0, 0]
    r2 = (pix[1] / pix[0]) ** 2
    assert d[1].item() == d[2].item() == pytest.approx(r2, rel=1e-15)
    assert d[3].item() == d[4].item() == pytest.approx(4 * r2, rel=1e-15)


def test_stable_smallest_is_a_stable_sorts_first_k():
    """Linear-time selection: the values and (for finite values) the columns of a stable sort's
    first k, on rows full of exact ties and of +inf (padding)."""
    from graphevent.nn.layers.dense_knn import stable_smallest

    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        w = int(torch.randint(3, 60, (1,), generator=g))
        k = int(torch.randint(1, w + 1, (1,), generator=g))
        d = torch.randint(0, 5, (2, 7, w), generator=g).double()
        d[torch.rand(2, 7, w, generator=g) < 0.2] = float("inf")
        values, cols = stable_smallest(d, k)
        want_values, want_cols = d.sort(dim=-1, stable=True)
        assert torch.equal(values, want_values[..., :k])
        finite = torch.isfinite(values)
        assert finite.any() and torch.equal(cols[finite], want_cols[..., :k][finite])
