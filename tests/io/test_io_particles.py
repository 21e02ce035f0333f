"""ParticleReader: energyflow (N, M, 4) jets from .npz (stored/deflated) and HDF5."""

import re
import zipfile

import h5py
import numpy as np
import pytest
from io_files import make_cfg, truncate

from graphevent.errors import ConfigError, DataError
from graphevent.io import open_reader
from graphevent.io.particles import ParticleReader, pid_to_charge

PI = np.pi
HALF = (2 * PI - 6.2) / 2


def jets() -> tuple[np.ndarray, np.ndarray]:
    """4 jets of up to 5 particles (pt, rapidity, phi, pid), zero-padded; jet 2 is empty."""
    x = np.zeros((4, 5, 4))
    x[0, :2] = [[10, 0.1, 1.0, 211], [30, 0.3, 1.2, 22]]
    x[1, :2] = [[5, -0.5, 3.1, -11], [5, -0.5, -3.1, 2112]]
    x[3, :5] = [[1, 0, 0, 13], [1, 0.2, 0, -2212], [1, 0, 0.2, 130], [1, -0.2, 0, 321], [1, 0, -0.2, -211]]
    return x, np.array([1.0, 0.0, 1.0, 0.0])


def pcfg(channels=("pt", "charge"), **kw):
    return make_cfg("particles", channels=channels, **kw)


def write(path, x, y, kind="npz"):
    if kind == "npz":
        np.savez(path, X=x, y=y)
    elif kind == "npz_compressed":
        np.savez_compressed(path, X=x, y=y)
    else:
        with h5py.File(path, "w") as f:
            f["X"], f["y"] = x, y
    return path


@pytest.mark.parametrize("kind", ["npz", "npz_compressed", "h5"])
def test_points_centred_on_pt_weighted_axis(tmp_path, kind):
    x, y = jets()
    path = write(tmp_path / ("qg.h5" if kind == "h5" else "QG_jets.npz"), x, y, kind)
    with open_reader(path, pcfg()) as r:
        assert isinstance(r, ParticleReader) and r.n_events == 4
        c = r.read(0, 4)
    assert c.images is None
    np.testing.assert_array_equal(c.counts, [2, 2, 0, 5])  # padding (pt == 0) dropped
    np.testing.assert_array_equal(c.values[:, 0], [10, 30, 5, 5, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(c.values[:, 1], [1, 0, 1, 0, -1, -1, 0, 1, -1])
    # jet 0: pt-weighted centre (0.25, 1.15)
    np.testing.assert_allclose(c.eta[:2], [-0.15, 0.05], atol=1e-6)
    np.testing.assert_allclose(c.phi[:2], [-0.15, 0.05], atol=1e-6)
    # jet 1 straddles phi = +-pi: centre at pi, phi wrapped
    np.testing.assert_allclose(c.phi[2:4], [-HALF, HALF], atol=1e-6)
    np.testing.assert_allclose(c.eta[2:4], [0.0, 0.0], atol=1e-7)
    # jet 3: symmetric around (0, 0)
    np.testing.assert_allclose(c.eta[4:], [0, 0.2, 0, -0.2, 0], atol=1e-7)
    np.testing.assert_allclose(c.phi[4:], [0, 0, 0.2, 0, -0.2], atol=1e-7)
    np.testing.assert_array_equal(c.labels, [1, 0, 1, 0])
    assert c.values.dtype == np.float32 and c.phi.dtype == np.float32 and c.counts.dtype == np.int64


def test_npz_and_hdf5_identical_and_chunks_seek_both_ways(tmp_path):
    x, y = jets()
    a = write(tmp_path / "a.npz", x, y, "npz_compressed")
    b = write(tmp_path / "b.h5", x, y, "h5")
    with open_reader(a, pcfg(["pt"])) as ra, open_reader(b, pcfg(["pt"])) as rb:
        late, early = ra.read(3, 4), ra.read(0, 2)  # backward seek inside the deflated member
        whole = rb.read(0, 4)
    np.testing.assert_array_equal(np.concatenate([early.values, late.values]), whole.values)  # jet 2 is empty
    np.testing.assert_array_equal(late.values[:, 0], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(early.counts, [2, 2])
    np.testing.assert_allclose(np.concatenate([early.phi, late.phi]), whole.phi, atol=0)
    assert whole.values.shape == (9, 1)


def test_pid_to_charge():
    charge, known = pid_to_charge(np.array([11, -11, 22, 211, -321, 2212, -2212, 130, 3312, 999.0]))
    np.testing.assert_array_equal(charge, [-1, 1, 0, 1, -1, 1, -1, 0, -1, 0])
    np.testing.assert_array_equal(known, [True] * 9 + [False])


# ---- bad inputs -------------------------------------------------------------------------
def test_unknown_pid_for_charge(tmp_path):
    x, y = jets()
    x[3, 2, 3] = 999
    path = write(tmp_path / "qg.npz", x, y)
    with open_reader(path, pcfg()) as r:
        np.testing.assert_array_equal(r.read(0, 3).counts, [2, 2, 0])
        with pytest.raises(DataError, match=re.escape("qg.npz: event 3: PDG id 999 has no known charge; known |ids|: [11,")):
            r.read(1, 4)


def test_unknown_channel_name(tmp_path):
    path = write(tmp_path / "qg.npz", *jets())
    with pytest.raises(ConfigError, match=re.escape("channels[1].name: 'energy' is not a particle feature; expected one of pt, charge")):
        open_reader(path, pcfg(["pt", "energy"]))


def test_wrong_shape(tmp_path):
    x, y = jets()
    path = write(tmp_path / "qg.npz", x[:, :, :2], y)
    msg = "qg.npz: key 'X' has shape (4, 5, 2); expected (N, M, 3 or 4) (pt, rapidity, phi[, pid] per particle)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, pcfg(["pt"]))
    path = write(tmp_path / "qg3.npz", x[:, :, :3], y)
    with pytest.raises(DataError, match=re.escape("qg3.npz: key 'X' has shape (4, 5, 3); expected (N, M, 4) (pt, rapidity, phi, pid")):
        open_reader(path, pcfg())


def test_missing_label_key(tmp_path):
    np.savez(tmp_path / "qg.npz", X=jets()[0])
    with pytest.raises(DataError, match=re.escape("qg.npz: key 'y' not found; keys in file: 'X'")):
        open_reader(tmp_path / "qg.npz", pcfg())


def test_label_outside_classes(tmp_path):
    x, _ = jets()
    path = write(tmp_path / "qg.h5", x, np.array([0, 1, 2, 0]), "h5")
    with pytest.raises(DataError, match=re.escape("qg.h5: label of event 2 is 2; expected 0..1")):
        open_reader(path, pcfg())


def test_pickled_objects_never_loaded(tmp_path):
    np.savez(tmp_path / "evil.npz", X=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match=re.escape("evil.npz: key 'X' holds Python objects; expected a numeric array")):
        open_reader(tmp_path / "evil.npz", pcfg())


def test_truncated_npz(tmp_path):
    path = truncate(write(tmp_path / "qg.npz", *jets(), "npz_compressed"))
    with pytest.raises(DataError, match=r"^qg\.npz: cannot read as npz or HDF5 particles: File is not a zip file"):
        open_reader(path, pcfg())


def test_member_shorter_than_header_says(tmp_path):
    x, y = jets()
    path = tmp_path / "short.npz"
    header = np.lib.format.header_data_from_array_1_0(x)
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("X.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(x.tobytes()[:200])  # 2 of 4 jets' worth of bytes would be 320
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, y)
    with open_reader(path, pcfg()) as r, pytest.raises(
        DataError, match=re.escape("short.npz: cannot read as npz or HDF5 particles: key 'X' ends early (rows 0..3 need 640 bytes, found 200)")
    ):
        r.read(0, 4)


def test_text_file_given_as_particles(text_file):
    path = text_file("QG_jets.npz")
    msg = "QG_jets.npz: cannot read as npz or HDF5 particles: file starts with b'even'; expected a .npz (zip) or HDF5 file"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, pcfg())
