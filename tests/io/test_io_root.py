"""RootReader: fixed-size image branches, jagged hit branches (centred), bad inputs."""

import re

import awkward as ak
import numpy as np
import pytest
import uproot
from io_files import H, W, known_images, make_cfg, truncate, write_h5, write_root_branches, write_root_image

from graphevent.errors import ConfigError, DataError
from graphevent.io import open_reader
from graphevent.io.root import RootReader

PI = np.pi


def image_cfg(**kw):
    kw.setdefault("target_keys", ["m0", "pt"])
    return make_cfg("root_image", **kw)


def test_image_branch_matches_hdf5(tmp_path):
    x = known_images(6)
    root = write_root_image(tmp_path / "img.root", x)
    h5 = write_h5(tmp_path / "img.h5", x)
    with open_reader(root, image_cfg(image_key="img")) as r, open_reader(
        h5, make_cfg("ml4sci_hdf5", image_key="X_jets", target_keys=["m0", "pt"])
    ) as ref:
        assert isinstance(r, RootReader) and r.n_events == 6
        c, cr = r.read(2, 6), ref.read(2, 6)
    assert c.images.shape == (4, 3, H, W) and c.images.dtype == np.float32
    np.testing.assert_array_equal(c.images, x[2:6])
    np.testing.assert_array_equal(c.labels, cr.labels)
    np.testing.assert_array_equal(c.targets, cr.targets)
    np.testing.assert_array_equal(c.index, [2, 3, 4, 5])


def test_one_branch_per_channel(tmp_path):
    x = known_images(5)
    root = write_root_image(tmp_path / "img.root", x, per_channel=True)
    with open_reader(root, image_cfg(channel_keys=["ch0", "ch1", "ch2"])) as r:
        c = r.read(0, 5)
    np.testing.assert_array_equal(c.images, x)
    # event 4, channel 2: 100*2 + 4 + 1 = 205 at (6 % 8, 10 % 6) = (6, 4)
    assert c.images[4, 2, 6, 4] == 205.0


def shared_hits(path):
    """Event 0: two hits (tracks 1 at eta .1/phi 1.0, ecal 3 at eta .3/phi 1.2); event 1 empty;
    event 2: two ecal hits of energy 2 straddling phi = +-pi."""
    eta = ak.Array([[0.1, 0.3], [], [0.0, 0.0]])
    phi = ak.Array([[1.0, 1.2], [], [3.1, -3.1]])
    tracks = ak.Array([[1.0, 0.0], [], [0.0, 0.0]])
    ecal = ak.Array([[0.0, 3.0], [], [2.0, 2.0]])
    hcal = ak.Array([[0.0, 0.0], [], [0.0, 0.0]])
    return write_root_branches(path, {"eta": eta, "phi": phi, "trk": tracks, "ecal": ecal, "hcal": hcal,
                                      "y": np.array([0, 1, 1], np.int32)})


def test_hits_shared_positions_centred_on_energy_centroid(tmp_path):
    cfg = make_cfg("root_hits", channel_keys=["trk", "ecal", "hcal"], eta_key="eta", phi_key="phi")
    with open_reader(shared_hits(tmp_path / "hits.root"), cfg) as r:
        c = r.read(0, 3)
    assert c.images is None
    np.testing.assert_array_equal(c.counts, [2, 0, 2])
    np.testing.assert_array_equal(c.values, [[1, 0, 0], [0, 3, 0], [0, 2, 0], [0, 2, 0]])
    # event 0: weights 1, 3 -> centre (0.25, 1.15)
    np.testing.assert_allclose(c.eta[:2], [-0.15, 0.05], atol=1e-6)
    np.testing.assert_allclose(c.phi[:2], [-0.15, 0.05], atol=1e-6)
    # event 2: centre at phi = pi; hits are 2*pi - 6.2 apart
    half = (2 * PI - 6.2) / 2
    np.testing.assert_allclose(c.phi[2:], [-half, half], atol=1e-6)
    np.testing.assert_allclose(c.eta[2:], [0.0, 0.0], atol=1e-7)
    assert c.values.dtype == np.float32 and c.eta.dtype == np.float32 and c.counts.dtype == np.int64
    np.testing.assert_array_equal(c.labels, [0, 1, 1])
    assert c.targets.shape == (3, 0)


def test_hits_chunks_equal_whole_read(tmp_path):
    cfg = make_cfg("root_hits", channel_keys=["trk", "ecal", "hcal"], eta_key="eta", phi_key="phi")
    with open_reader(shared_hits(tmp_path / "hits.root"), cfg) as r:
        whole, a, b = r.read(0, 3), r.read(0, 1), r.read(1, 3)
    np.testing.assert_array_equal(np.concatenate([a.values, b.values]), whole.values)
    np.testing.assert_array_equal(np.concatenate([a.phi, b.phi]), whole.phi)
    np.testing.assert_array_equal(np.concatenate([a.counts, b.counts]), whole.counts)


def test_hits_one_collection_per_channel(tmp_path):
    branches = {
        "trk_e": ak.Array([[2.0], []]), "trk_eta": ak.Array([[0.0], []]), "trk_phi": ak.Array([[0.0], []]),
        "ecal_e": ak.Array([[2.0], [5.0]]), "ecal_eta": ak.Array([[0.2], [1.0]]), "ecal_phi": ak.Array([[0.4], [-1.0]]),
        "hcal_e": ak.Array([[], [5.0]]), "hcal_eta": ak.Array([[], [1.0]]), "hcal_phi": ak.Array([[], [-1.0]]),
        "y": np.array([1, 0], np.int32),
    }
    path = write_root_branches(tmp_path / "hits.root", branches)
    cfg = make_cfg("root_hits", channel_keys=["trk_e", "ecal_e", "hcal_e"], channel_eta_keys=["trk_eta", "ecal_eta", "hcal_eta"],
                   channel_phi_keys=["trk_phi", "ecal_phi", "hcal_phi"])
    with open_reader(path, cfg) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.counts, [2, 2])
    # event by event, channel order kept; a hit has zeros in the other channels' columns
    np.testing.assert_array_equal(c.values, [[2, 0, 0], [0, 2, 0], [0, 5, 0], [0, 0, 5]])
    np.testing.assert_allclose(c.eta, [-0.1, 0.1, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(c.phi, [-0.2, 0.2, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(c.labels, [1, 0])


# ---- bad inputs -------------------------------------------------------------------------
def test_missing_image_branch(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(2))
    with pytest.raises(DataError, match=re.escape("img.root: key 'image' not found; branches in file: 'img', 'm0', 'pt', 'y'")):
        open_reader(path, image_cfg(image_key="image"))


def test_wrong_image_shape(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(2, c=2))
    msg = "img.root: key 'img' has shape (2, 8, 6, 2); expected (N, 8, 6, 3) (channels_last; channels tracks, ecal, hcal)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, image_cfg(image_key="img"))


def test_channel_keys_count_must_match_channels(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(2), per_channel=True)
    with pytest.raises(ConfigError, match=re.escape("reader.channel_keys: 2 branches ['ch0', 'ch1'] for 3 channels")):
        open_reader(path, image_cfg(channel_keys=["ch0", "ch1"]))


def test_jagged_branch_given_as_image(tmp_path):
    cfg = image_cfg(image_key="eta", target_keys=[])
    with pytest.raises(DataError, match=re.escape("hits.root: key 'eta' has type double[]; expected (N, 8, 6, 3)")):
        open_reader(shared_hits(tmp_path / "hits.root"), cfg)


def test_tree_missing(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(2), tree="jets")
    with pytest.raises(DataError, match=re.escape("img.root: key 'Events' not found; objects in file: 'jets'")):
        open_reader(path, image_cfg(image_key="img"))


def test_object_is_not_a_tree(tmp_path):
    path = tmp_path / "h.root"
    with uproot.recreate(path) as f:
        f["Events"] = np.histogram(np.arange(10.0), bins=5)
    with pytest.raises(DataError, match=re.escape("h.root: key 'Events' is a TH1D; expected a TTree")):
        open_reader(path, image_cfg(image_key="img"))


def test_hit_counts_differ(tmp_path):
    branches = {"eta": ak.Array([[0.1, 0.2], [0.3]]), "phi": ak.Array([[0.1, 0.2], [0.3]]),
                "e": ak.Array([[1.0, 2.0], [1.0, 2.0]]), "y": np.array([0, 1], np.int32)}
    path = write_root_branches(tmp_path / "hits.root", branches)
    cfg = make_cfg("root_hits", channels=["ecal"], channel_keys=["e"], eta_key="eta", phi_key="phi")
    with open_reader(path, cfg) as r, pytest.raises(
        DataError, match=re.escape("hits.root: event 1: key 'e' has 2 hits but 'eta' has 1; expected one value per hit")
    ):
        r.read(0, 2)


def test_scalar_branch_given_as_hits(tmp_path):
    cfg = make_cfg("root_hits", channels=["ecal"], channel_keys=["y"], eta_key="eta", phi_key="phi")
    msg = "hits.root: key 'y' has type int32_t; expected a variable-length number branch (one value per hit)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(shared_hits(tmp_path / "hits.root"), cfg)


def test_label_outside_classes(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(3), labels=np.array([0, 5, 1]))
    with pytest.raises(DataError, match=re.escape("img.root: label of event 1 is 5; expected 0..1")):
        open_reader(path, image_cfg(image_key="img"))


def test_target_branch_missing(tmp_path):
    path = write_root_image(tmp_path / "img.root", known_images(2))
    with pytest.raises(DataError, match=re.escape("img.root: key 'mass' not found; branches in file:")):
        open_reader(path, image_cfg(image_key="img", target_keys=["mass"]))


def test_truncated_file(tmp_path):
    path = truncate(write_root_image(tmp_path / "img.root", known_images(20)))
    with pytest.raises(DataError, match=r"^img\.root: cannot read as ROOT: file is truncated: \d+ bytes, the ROOT header says \d+$"):
        open_reader(path, image_cfg(image_key="img"))


def test_text_file_given_as_root(text_file):
    path = text_file("fake.root")
    msg = "fake.root: cannot read as ROOT: not a ROOT file (starts with b'even', expected b'root')"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, image_cfg(image_key="img"))
