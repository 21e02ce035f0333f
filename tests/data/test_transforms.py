import numpy as np
import pytest

from graphevent.data.transforms import ImageToPoints, KNNGraph, ScaleTransform, points_from_hits
from graphevent.data.transforms.feature_transform import PerChannelValueTransform

P = 0.0174


def _image():
    img = np.zeros((2, 3, 125, 125), np.float32)
    img[0, 0, 62, 62] = 5.0  # tracks at the centre
    img[0, 1, 62, 62] = 2.0  # ECAL at the centre
    img[0, 1, 10, 20] = 1.0  # ECAL off-centre
    img[0, 2, 60:65, 60:65] = 0.4  # one HCAL tower (cell 12, 12) spread over 5x5 pixels
    img[1, 1, 0, 0] = 3.0
    img[1, 0, 0, 1] = 0.05  # below the tracks threshold of 0.1
    return img


def test_union_collapse_by_hand():
    pc = ImageToPoints([0.1, 0.0, 0.0], [1, 1, 5], (P, P))(_image())
    assert pc.counts.tolist() == [3, 1]
    np.testing.assert_allclose(pc.values, [[0, 1, 0], [5, 2, 0], [0, 0, 10.0], [0, 3, 0]], rtol=1e-6)
    # rows run along eta, columns along phi, centred on pixel 62
    np.testing.assert_allclose(pc.pos / P, [[-52, -42], [0, 0], [0, 0], [-62, -62]], atol=1e-4)
    # node counts under the 4 modes: union, union+collapse, per_channel, per_channel+collapse
    assert pc.alt_counts.tolist() == [[26, 3, 28, 4], [1, 1, 1, 1]]


def test_union_without_collapse_keeps_every_hcal_pixel():
    pc = ImageToPoints([0.1, 0, 0], [1, 1, 5], (P, P), collapse=False)(_image())
    assert pc.counts.tolist() == [26, 1]
    # the tower's energy is conserved: 25 pixels x 0.4
    assert pc.values[:26, 2].sum() == pytest.approx(10.0, rel=1e-6)


def test_per_channel_mode_one_hot():
    pc = ImageToPoints([0.1, 0, 0], [1, 1, 5], (P, P), mode="per_channel")(_image())
    assert pc.counts.tolist() == [4, 1]
    np.testing.assert_allclose(
        pc.values, [[1, 0, 0, 5], [0, 1, 0, 1], [0, 1, 0, 2], [0, 0, 1, 10], [0, 1, 0, 3]], rtol=1e-6
    )


def test_max_nodes_keeps_largest():
    pc = ImageToPoints([0.1, 0, 0], [1, 1, 5], (P, P), max_nodes=2)(_image())
    assert pc.counts.tolist() == [2, 1]
    # event 0 keeps values 7 (5+2) and 10 (tower), in their original order
    np.testing.assert_allclose(pc.values[:2].sum(1), [7.0, 10.0])


def test_upsample_must_divide_image():
    with pytest.raises(Exception, match="does not divide the image size 125x125"):
        ImageToPoints([0, 0, 0], [1, 1, 4], (P, P))(_image())


def test_scale_transform_log1p():
    v = np.array([[1.0, 2.0], [0.0, 3.0]], np.float32)
    out = ScaleTransform([2.0, 1.0], ["log1p", "none"])(v)
    np.testing.assert_allclose(out, [[np.log(3.0), 2.0], [0.0, 3.0]], rtol=1e-6)
    assert v[0, 0] == 1.0  # input untouched


def test_per_channel_value_transform():
    v = np.array([[1, 0, 4.0], [0, 1, 4.0]], np.float32)
    out = PerChannelValueTransform([1.0, 0.5], ["log1p", "none"])(v)
    np.testing.assert_allclose(out[:, 2], [np.log(5.0), 2.0], rtol=1e-6)


def test_points_from_hits_threshold():
    values = np.array([[1.0, 0], [0.05, 0], [0, 2.0], [0, 0.5]], np.float32)
    pc = points_from_hits(values, np.zeros(4), np.arange(4.0), np.array([3, 1]), [0.1, 1.0])
    assert pc.counts.tolist() == [2, 0]
    np.testing.assert_allclose(pc.values, [[1.0, 0], [0, 2.0]])


def test_knn_graph_transform_local_indices():
    pos = np.array([[0, 0], [0, 1], [0, 3], [5, 5], [5, 6]], np.float32)
    nbr = KNNGraph(k=2, backend="scipy")(pos, np.array([3, 2]))
    assert nbr.tolist() == [[1, 2], [0, 2], [1, 0], [1, -1], [0, -1]]
    assert repr(KNNGraph(4)) == "KNNGraph(k=4, backend='scipy')"


def test_signed_channel_keeps_negative_values():
    img = np.zeros((1, 2, 5, 5), np.float32)
    img[0, 0, 2, 2] = 3.0
    img[0, 1, 1, 1] = -0.7  # e.g. a negative impact parameter
    img[0, 1, 3, 3] = 0.05  # |value| below threshold
    unsigned = ImageToPoints([0.0, 0.1], [1, 1], (1.0, 1.0))(img)
    assert unsigned.counts.tolist() == [1]
    signed = ImageToPoints([0.0, 0.1], [1, 1], (1.0, 1.0), signed=[False, True])(img)
    assert signed.counts.tolist() == [2]
    np.testing.assert_allclose(signed.values, [[0, -0.7], [3.0, 0]], rtol=1e-6)


@pytest.mark.parametrize("mode", ["union", "per_channel"])
@pytest.mark.parametrize("collapse", [True, False])
def test_channels_last_view_gives_the_same_points(mode, collapse):
    # the HDF5 reader hands over a channels-first view of channels-last memory
    rng = np.random.default_rng(2)
    img = np.where(rng.random((6, 3, 20, 20)) < 0.2, rng.normal(size=(6, 3, 20, 20)), 0).astype(np.float32)
    view = np.ascontiguousarray(img.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not view.flags.c_contiguous
    itp = ImageToPoints([0.1, 0.0, 0.3], [1, 2, 4], (P, 2 * P), mode=mode, collapse=collapse, signed=[True, False, True])
    a, b = itp(img), itp(view)
    for field in ("values", "pos", "counts", "alt_counts", "lattice_pos"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    # lattice positions: eta in pixels, phi in units of the eta pixel size (here 2 per pixel)
    np.testing.assert_allclose(a.lattice_pos * P, a.pos, rtol=1e-6, atol=1e-6)
