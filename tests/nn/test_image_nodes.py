"""ImageNodes (the exported models' front-end) makes the nodes preprocessing makes: same
count, order, positions (bit for bit) and features, node cap ties included."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from graphevent.data.transforms.feature_transform import PerChannelValueTransform, ScaleTransform
from graphevent.data.transforms.image_to_points import ImageToPoints
from graphevent.errors import ConfigError
from graphevent.nn.layers.image_nodes import ImageNodes, numpy_row_sum

H = W = 20
SCALES, TRANSFORMS = [1.0, 0.5, 2.0, 1.0], ["log1p", "none", "log1p", "none"]
ONNX_MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]


def _images(seed: int = 0) -> np.ndarray:
    """(6, H, W, 4) sparse images on a few levels (ties), a signed channel, an empty event,
    and a fourth channel in 5x5 towers."""
    rng = np.random.default_rng(seed)
    x = np.zeros((6, H, W, 4), np.float32)
    for b in range(6):
        n = rng.integers(10, 80)
        x[b, rng.integers(0, H, n), rng.integers(0, W, n), rng.integers(0, 3, n)] = rng.choice(np.float32([1, 2, 3.5, 0.25]), n)
        x[b, :, :, 1] *= np.where(rng.random((H, W)) < 0.5, -1, 1)  # signed: negative values are nodes too
        tower = rng.choice(np.float32([0, 0, 0, 0.5, 1.0]), (H // 5, W // 5))
        x[b, :, :, 3] = np.kron(tower, np.ones((5, 5), np.float32))
    x[3] = 0
    return x


@pytest.mark.parametrize("mode", ["union", "per_channel"])
@pytest.mark.parametrize("collapse", [True, False])
@pytest.mark.parametrize("cap", [0, 7, 30])
def test_image_nodes_equal_preprocessing(mode, collapse, cap):
    x = _images()
    itp = ImageToPoints([0.0, 0.5, 0.0, 0.2], [1, 1, 1, 5], (0.0174, 0.0174), mode=mode, collapse=collapse,
                        max_nodes=cap, signed=[False, True, False, False])
    pc = itp(x.transpose(0, 3, 1, 2))
    transform = PerChannelValueTransform if mode == "per_channel" else ScaleTransform
    want = transform(SCALES, TRANSFORMS)(pc.values)
    feats, pos, mask, counts = ImageNodes(itp, (H, W), SCALES, TRANSFORMS)(torch.from_numpy(x))
    assert counts.tolist() == pc.counts.tolist()
    assert feats.shape[1] == max(pc.counts.max(), 2) and mask.sum(1).tolist() == pc.counts.tolist()
    if cap:
        assert (pc.counts == cap).sum() >= 3  # the cap cuts these events
    off = pc.offsets
    for b in range(len(x)):
        k = pc.counts[b]
        np.testing.assert_array_equal(pos[b, :k].numpy(), pc.pos[off[b]:off[b + 1]])
        np.testing.assert_allclose(feats[b, :k].numpy(), want[off[b]:off[b + 1]], rtol=1e-6, atol=1e-7)
        assert not mask[b, k:].any() and (feats[b, k:] == 0).all()


def test_the_cap_keeps_equal_values_in_node_order():
    """Twelve pixels of equal value, a cap of 5: the first five in row-major order."""
    x = np.zeros((1, H, W, 1), np.float32)
    pixels = [(2, 3), (2, 9), (4, 1), (7, 7), (8, 2), (9, 9), (11, 0), (12, 5), (13, 13), (15, 4), (17, 1), (19, 19)]
    for r, c in pixels:
        x[0, r, c, 0] = 2.0
    x[0, 13, 13, 0] = 3.0  # the largest: kept whatever its place
    itp = ImageToPoints([0.0], [1], (1.0, 1.0), max_nodes=5)
    _, pos, _, counts = ImageNodes(itp, (H, W), [1.0], ["none"])(torch.from_numpy(x))
    rows = (pos[0, :5, 0] + (H - 1) / 2).round().int().tolist()
    assert counts.tolist() == [5]
    assert rows == [2, 2, 4, 7, 13]


def test_channels_first_input_gives_the_same_nodes():
    x = _images(1)
    itp = ImageToPoints([0.0, 0.0, 0.0, 0.0], [1, 1, 1, 5], (0.0174, 0.0174), max_nodes=20)
    last = ImageNodes(itp, (H, W), SCALES, TRANSFORMS)(torch.from_numpy(x))
    first = ImageNodes(itp, (H, W), SCALES, TRANSFORMS, channels_last=False)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    for a, b in zip(last, first):
        assert torch.equal(a, b)


def test_non_finite_pixels_read_as_zero():
    x = _images(2)
    bad = x.copy()
    bad[0, 0, 0, 0], bad[1, 5, 5, 2], bad[2, 1, 1, 1] = np.nan, np.inf, -np.inf
    x[0, 0, 0, 0] = x[1, 5, 5, 2] = x[2, 1, 1, 1] = 0.0
    itp = ImageToPoints([0.0] * 4, [1, 1, 1, 5], (0.0174, 0.0174))
    m = ImageNodes(itp, (H, W), SCALES, TRANSFORMS)
    for a, b in zip(m(torch.from_numpy(bad)), m(torch.from_numpy(x))):
        assert torch.equal(a, b)


@pytest.mark.parametrize("c", [3, 8, 13, 24])
def test_numpy_row_sum_adds_in_numpys_order(c):
    rng = np.random.default_rng(c)
    v = (rng.random((5000, c)) * 10 ** rng.uniform(-4, 4, (5000, c))).astype(np.float32)
    got = numpy_row_sum([torch.from_numpy(v[:, i].copy()) for i in range(c)]).numpy()
    np.testing.assert_array_equal(got, v.sum(1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scripted_image_nodes_equal_eager():
    x = torch.from_numpy(_images(3))
    itp = ImageToPoints([0.0] * 4, [1, 1, 1, 5], (0.0174, 0.0174), max_nodes=12)
    m = ImageNodes(itp, (H, W), SCALES, TRANSFORMS)
    for a, b in zip(torch.jit.script(m)(x), m(x)):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} (pip install 'graphevent[export]')")
@pytest.mark.parametrize("mode", ["union", "per_channel"])
def test_onnx_image_nodes_equal_preprocessing(tmp_path, mode):
    """ONNX Runtime's front end (top-k sorts, infinite values dropped where gathered) makes
    preprocessing's nodes: a cap through equal values, a signed channel, towers, NaN and
    +-Inf pixels, an event of one node; on a batch of another size than the traced one."""
    import onnxruntime as ort
    from torch.export import Dim

    x = _images(4)
    x[0, 0, 0, 0], x[1, 5, 5, 2], x[2, 1, 1, 1], x[4, 7, 3, 1] = np.nan, np.inf, -np.inf, np.inf
    x[3, 2, 2, 0], x[3, 9, 9, 2], x[3, 4, 4, 1], x[3, 6, 6, 0] = 1.0, np.inf, -np.inf, np.nan  # one node, below the cap
    itp = ImageToPoints([0.0, 0.5, 0.0, 0.2], [1, 1, 1, 5], (0.0174, 0.0174), mode=mode, max_nodes=9,
                        signed=[False, True, False, False])
    module = ImageNodes(itp, (H, W), SCALES, TRANSFORMS)
    module.onnx = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.from_numpy(x[:4]),), dynamo=True, input_names=["images"],
                                    dynamic_shapes={"images": {0: Dim("batch")}})
    program.save(str(tmp_path / "nodes.onnx"))
    feats, pos, mask, counts = ort.InferenceSession(str(tmp_path / "nodes.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})
    clean = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    pc = itp(clean.transpose(0, 3, 1, 2))
    transform = PerChannelValueTransform if mode == "per_channel" else ScaleTransform
    want = transform(SCALES, TRANSFORMS)(pc.values)
    assert counts.tolist() == pc.counts.tolist() and (pc.counts == 9).sum() >= 3 and pc.counts[3] == 1
    assert mask.sum(1).tolist() == pc.counts.tolist()
    np.testing.assert_array_equal(pos[mask], pc.pos)
    np.testing.assert_allclose(feats[mask], want, rtol=1e-6, atol=1e-7)


def test_too_many_channels_say_so():
    itp = ImageToPoints([0.0] * 129, [1] * 129, (1.0, 1.0))
    with pytest.raises(ConfigError, match=r"^channels: 129 image channels; the image-input export takes at most 128$"):
        ImageNodes(itp, (4, 4), [1.0] * 129, ["none"] * 129)
