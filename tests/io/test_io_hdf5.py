"""HDF5ImageReader: values known by construction, layouts, labels, and every bad input."""

import re

import h5py
import numpy as np
import pytest
from io_files import H, W, known_images, make_cfg, truncate, write_h5

from graphevent.errors import ConfigError, DataError
from graphevent.io import open_reader
from graphevent.io.hdf5 import HDF5ImageReader


def qg_cfg(**kw):
    return make_cfg("ml4sci_hdf5", image_key="X_jets", target_keys=["m0", "pt"], **kw)


def test_reads_known_pixels_labels_targets(tmp_path):
    x = known_images(7)
    path = write_h5(tmp_path / "qg.h5", x)
    with open_reader(path, qg_cfg()) as r:
        assert isinstance(r, HDF5ImageReader)
        assert r.n_events == 7
        c = r.read(2, 5)
    assert c.images.shape == (3, 3, H, W) and c.images.dtype == np.float32
    assert c.images.transpose(0, 2, 3, 1).flags.c_contiguous  # channels-last file: a view, no copy
    # event 3, channel 1: value 100*1 + 3 + 1 = 104 at ((3+1) % 8, (6+1) % 6) = (4, 1)
    assert c.images[1, 1, 4, 1] == 104.0
    assert c.images[1, 0, H - 1, W - 1] == -1.0
    assert np.count_nonzero(c.images[1]) == 4
    np.testing.assert_array_equal(c.images, x[2:5])
    np.testing.assert_array_equal(c.labels, [0, 1, 0])
    assert c.labels.dtype == np.int64
    np.testing.assert_array_equal(c.targets, [[20.0, 1002.0], [30.0, 1003.0], [40.0, 1004.0]])
    assert c.targets.dtype == np.float32
    np.testing.assert_array_equal(c.index, [2, 3, 4])
    assert c.values is None and c.counts is None


def test_chunks_cover_file_exactly(tmp_path):
    x = known_images(10)
    path = write_h5(tmp_path / "qg.h5", x)
    with open_reader(path, qg_cfg()) as r:
        parts = [r.read(s, min(s + 3, 10)) for s in range(0, 10, 3)]
    np.testing.assert_array_equal(np.concatenate([p.images for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p.index for p in parts]), np.arange(10))


def test_channels_first_and_last_give_identical_chunks(tmp_path):
    x = known_images(6)
    last = write_h5(tmp_path / "last.h5", x, layout="channels_last")
    first = write_h5(tmp_path / "first.h5", x, layout="channels_first")
    with open_reader(last, qg_cfg()) as a, open_reader(first, qg_cfg(layout="channels_first")) as b:
        ca, cb = a.read(1, 6), b.read(1, 6)
    np.testing.assert_array_equal(ca.images, cb.images)
    np.testing.assert_array_equal(ca.labels, cb.labels)
    np.testing.assert_array_equal(ca.targets, cb.targets)


def test_egamma_one_file_per_class_labels_from_config(tmp_path):
    x = known_images(4, c=2, h=32, w=32)
    cfg = make_cfg(
        "ml4sci_hdf5", channels=("energy", "time"), height=32, width=32, classes=("photon", "electron"),
        image_key="X", file_labels={"SinglePhoton*": 0, "SingleElectron*": 1},
    )
    photon = write_h5(tmp_path / "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5", x, image_key="X", label_key=None, targets={})
    electron = write_h5(tmp_path / "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5", x, image_key="X", label_key=None, targets={})
    with open_reader(photon, cfg) as rp, open_reader(electron, cfg) as re_:
        cp, ce = rp.read(0, 4), re_.read(0, 4)
    np.testing.assert_array_equal(cp.labels, [0, 0, 0, 0])
    np.testing.assert_array_equal(ce.labels, [1, 1, 1, 1])
    assert cp.targets.shape == (4, 0)
    np.testing.assert_array_equal(cp.images, x)
    # a fixed label for every file
    fixed = make_cfg("ml4sci_hdf5", channels=("energy", "time"), height=32, width=32, image_key="X", label=1)
    with open_reader(photon, fixed) as r:
        np.testing.assert_array_equal(r.read(0, 4).labels, [1, 1, 1, 1])


def test_egamma_file_matching_no_pattern(tmp_path):
    x = known_images(2, c=2, h=32, w=32)
    cfg = make_cfg("ml4sci_hdf5", channels=("energy", "time"), height=32, width=32, image_key="X",
                   file_labels={"SinglePhoton*": 0})
    path = write_h5(tmp_path / "other.h5", x, image_key="X", label_key=None, targets={})
    with pytest.raises(DataError, match=re.escape("other.h5: file name matches no reader.file_labels pattern; patterns: 'SinglePhoton*'")):
        open_reader(path, cfg)


def test_file_labels_outside_classes_is_config_error():
    with pytest.raises(ConfigError, match=r"test.reader.file_labels.Single\*: invalid value 2; expected 0..1"):
        make_cfg("ml4sci_hdf5", image_key="X", file_labels={"Single*": 2})


def test_boosted_top_float_labels_n_by_1(tmp_path):
    x = known_images(5, c=8)
    labels = np.array([[0.0], [1.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    path = write_h5(tmp_path / "top.h5", x, image_key="jet", labels=labels, label_key="Y", targets={})
    cfg = make_cfg("ml4sci_hdf5", channels=[f"c{i}" for i in range(8)], image_key="jet", label_key="Y")
    with open_reader(path, cfg) as r:
        c = r.read(0, 5)
    np.testing.assert_array_equal(c.labels, [0, 1, 1, 0, 1])
    assert c.images.shape == (5, 8, H, W)
    assert c.images[4, 7, (4 + 7) % H, (8 + 7) % W] == 100 * 7 + 5


# ---- bad inputs -------------------------------------------------------------------------
def test_missing_image_key(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3), image_key="images")
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'X_jets' not found; keys in file: 'images', 'm0', 'pt', 'y'")):
        open_reader(path, qg_cfg())


def test_wrong_image_shape(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3, h=9))
    msg = "qg.h5: key 'X_jets' has shape (3, 9, 6, 3); expected (N, 8, 6, 3) (channels_last; channels tracks, ecal, hcal)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, qg_cfg())


def test_wrong_channel_count(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3, c=2))
    msg = "qg.h5: key 'X_jets' has shape (3, 8, 6, 2); expected (N, 8, 6, 3) (channels_last; channels tracks, ecal, hcal)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, qg_cfg())


def test_label_outside_classes(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(4), labels=np.array([0, 1, 2, 1]))
    msg = "qg.h5: label of event 2 is 2; expected 0..1 (classes ['quark', 'gluon'])"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, qg_cfg())


def test_label_not_an_integer(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(4), labels=np.array([0, 0.5, 1, 1]))
    with pytest.raises(DataError, match=re.escape("qg.h5: label of event 1 is 0.5; expected an integer class index")):
        open_reader(path, qg_cfg())


def test_target_key_missing(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3), targets={"m0": np.zeros(3)})
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'pt' not found; keys in file: 'X_jets', 'm0', 'y'")):
        open_reader(path, qg_cfg())


def test_target_not_one_value_per_event(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3), targets={"m0": np.zeros(3), "pt": np.zeros((3, 2))})
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'pt' has shape (3, 2); expected (3,) (one value per event)")):
        open_reader(path, qg_cfg())


def test_label_count_differs_from_images(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3), labels=np.array([0, 1]))
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'y' has shape (2,); expected (3,) (one value per event)")):
        open_reader(path, qg_cfg())


def test_string_dataset_rejected(tmp_path):
    path = tmp_path / "qg.h5"
    with h5py.File(path, "w") as f:
        f["X_jets"] = np.array([b"abc", b"def"])
    with pytest.raises(DataError, match=re.escape("qg.h5: key 'X_jets' has dtype |S3; expected numbers")):
        open_reader(path, qg_cfg())


def test_truncated_file(tmp_path):
    path = truncate(write_h5(tmp_path / "qg.h5", known_images(20)))
    with pytest.raises(DataError, match=r"^qg\.h5: cannot read as HDF5: .*truncated file"):
        open_reader(path, qg_cfg())


def test_text_file_given_as_hdf5(text_file):
    path = text_file("fake.h5")
    with pytest.raises(DataError, match=r"^fake\.h5: cannot read as HDF5: .*file signature not found"):
        open_reader(path, qg_cfg())


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.h5'}: input file not found")):
        open_reader(tmp_path / "nope.h5", qg_cfg())


def test_range_outside_file_is_a_caller_bug(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(3))
    with open_reader(path, qg_cfg()) as r, pytest.raises(ValueError, match=re.escape("event range [2, 4) is outside [0, 3)")):
        r.read(2, 4)


@pytest.mark.parametrize(
    "storage, direct",
    [
        (dict(chunks=(1, H, W, 3), compression="gzip"), True),  # ML4SCI layout: one event per chunk
        (dict(chunks=(3, H, W, 3), compression="gzip", compression_opts=9), True),  # ranges cut chunks
        (dict(chunks=(3, H, W, 3), compression="gzip", dtype=">f8"), True),  # big-endian doubles
        (dict(chunks=(2, H, W, 3), compression="gzip", shuffle=True), True),  # as graphevent simulate writes
        (dict(chunks=(2, H, W, 3), compression="gzip", shuffle=True, dtype=">f8"), True),
        (dict(chunks=(2, H, W, 3), compression="gzip", fletcher32=True), False),  # a checksum filter
        (dict(chunks=(2, H // 2, W, 3), compression="gzip"), False),  # chunks split events
        (dict(chunks=(2, H, W, 3)), False),  # no filter
        (dict(), False),  # contiguous
    ],
)
def test_inflating_stored_chunks_equals_h5py(tmp_path, storage, direct):
    x = known_images(11).transpose(0, 2, 3, 1)
    path = write_h5(tmp_path / "qg.h5", known_images(11))
    with h5py.File(path, "a") as f:
        del f["X_jets"]
        dtype = storage.pop("dtype", np.float32)
        f.create_dataset("X_jets", data=x.astype(dtype), **storage)
    with open_reader(path, qg_cfg()) as r:
        assert (r._direct is not None) is direct
        for start, stop in [(0, 11), (1, 2), (2, 7), (10, 11)]:
            got = r.read(start, stop).images
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, x[start:stop].transpose(0, 3, 1, 2))


def test_inflating_stored_chunks_reads_unwritten_chunks_as_fill_value(tmp_path):
    path = write_h5(tmp_path / "qg.h5", known_images(7))
    with h5py.File(path, "a") as f:
        del f["X_jets"]
        d = f.create_dataset("X_jets", (7, H, W, 3), np.float32, chunks=(2, H, W, 3), compression="gzip", fillvalue=-3.0)
        d[0:2] = 1.0
        d[6:7] = 2.0  # chunks at events 2 and 4 are never written
    with open_reader(path, qg_cfg()) as r:
        assert r._direct is not None
        got = r.read(1, 7).images
    assert got[0].min() == got[0].max() == 1.0
    assert (got[1:5] == -3.0).all() and (got[5] == 2.0).all()
