"""Every example data config loads, and reads a tiny file written in the layout it documents."""

from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
from io_files import known_images, write_parquet, write_root_branches

from graphevent.config.data import load_data_config
from graphevent.io import open_reader

CONFIG_DIR = Path(__file__).parents[2] / "graphevent" / "configs" / "data"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
EXPECTED = {
    "ml4sci_qg_hdf5", "e2e_qg_parquet", "ml4sci_egamma", "boosted_top_8ch", "root_image", "root_hits", "energyflow_qg",
    "whole_event_hdf5",
}


def test_one_config_per_layout():
    assert {p.stem for p in CONFIGS} == EXPECTED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
    cfg = load_data_config(path)
    assert cfg.classes and cfg.channels and cfg.graph.k >= 1


def test_main_config_values():
    cfg = load_data_config(CONFIG_DIR / "ml4sci_qg_hdf5.yaml")
    assert [c.name for c in cfg.channels] == ["tracks", "ecal", "hcal"]
    assert [c.upsample for c in cfg.channels] == [1, 1, 5]
    assert [c.transform for c in cfg.channels] == ["log1p"] * 3
    assert cfg.image.pixel_size == (0.0174, 0.0174) and (cfg.image.height, cfg.image.width) == (125, 125)
    assert cfg.graph.k == 16 and cfg.reader.target_keys == ["m0", "pt"] and cfg.classes == ["quark", "gluon"]


def test_ml4sci_qg_config_reads_its_layout(tmp_path):
    x = known_images(2, c=3, h=125, w=125)
    path = tmp_path / "quark-gluon_data-set_n139306.hdf5"
    with h5py.File(path, "w") as f:
        f["X_jets"] = x.transpose(0, 2, 3, 1)
        f["y"], f["m0"], f["pt"] = np.array([0.0, 1.0]), np.array([5.0, 6.0]), np.array([70.0, 80.0])
    with open_reader(path, load_data_config(CONFIG_DIR / "ml4sci_qg_hdf5.yaml")) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.images, x)
    np.testing.assert_array_equal(c.targets, [[5, 70], [6, 80]])


def test_whole_event_config_reads_its_layout(tmp_path):
    """`graphevent simulate events` files: 170 x 360 barrel images, three classes, m_gg and ht."""
    x = known_images(3, c=3, h=170, w=360)
    path = tmp_path / "events.h5"
    with h5py.File(path, "w") as f:
        f["X_jets"] = x.transpose(0, 2, 3, 1)
        f["y"], f["m_gg"], f["ht"] = np.array([0.0, 1.0, 2.0]), np.array([110.0, 125.0, 140.0]), np.array([90.0, 150.0, 200.0])
    cfg = load_data_config(CONFIG_DIR / "whole_event_hdf5.yaml")
    assert cfg.classes == ["diphoton", "hgg", "gamma_jet"] and cfg.graph.max_nodes == 1500
    # the image spans the full 2 pi in phi, so positions measured from its centre are absolute
    assert cfg.image.width * cfg.image.pixel_size[1] == pytest.approx(2 * np.pi, abs=1e-12)
    assert cfg.image.height * cfg.image.pixel_size[0] == pytest.approx(2 * 1.479)
    with open_reader(path, cfg) as r:
        c = r.read(0, 3)
    np.testing.assert_array_equal(c.images, x)
    np.testing.assert_array_equal(c.labels, [0, 1, 2])
    np.testing.assert_array_equal(c.targets, [[110, 90], [125, 150], [140, 200]])


def test_e2e_parquet_config_reads_its_layout(tmp_path):
    x = known_images(3, c=3, h=125, w=125)
    path = write_parquet(tmp_path / "QCDToGGQQ_IMGjet_RH1all_jet0_run0_n36272.test.snappy.parquet", x)
    with open_reader(path, load_data_config(CONFIG_DIR / "e2e_qg_parquet.yaml")) as r:
        c = r.read(1, 3)
    np.testing.assert_array_equal(c.images, x[1:3])
    np.testing.assert_array_equal(c.labels, [1, 0])


def test_egamma_config_labels_by_file_name(tmp_path):
    cfg = load_data_config(CONFIG_DIR / "ml4sci_egamma.yaml")
    x = known_images(2, c=2, h=32, w=32)
    labels = {}
    for name in ("SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5", "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"):
        with h5py.File(tmp_path / name, "w") as f:
            f["X"], f["y"] = x.transpose(0, 2, 3, 1), np.zeros(2)
        with open_reader(tmp_path / name, cfg) as r:
            labels[name[:8]] = r.read(0, 2).labels.tolist()
    assert labels == {"SinglePh": [0, 0], "SingleEl": [1, 1]}


def test_boosted_top_config_reads_its_layout(tmp_path):
    x = known_images(2, c=8, h=125, w=125)
    with h5py.File(tmp_path / "top.h5", "w") as f:
        f["jet"], f["Y"] = x.transpose(0, 2, 3, 1), np.array([[1.0], [0.0]], np.float32)
    with open_reader(tmp_path / "top.h5", load_data_config(CONFIG_DIR / "boosted_top_8ch.yaml")) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.images, x)
    np.testing.assert_array_equal(c.labels, [1, 0])


def test_root_image_config_reads_its_layout(tmp_path):
    import uproot

    x = known_images(2, c=3, h=125, w=125)
    with uproot.recreate(tmp_path / "img.root") as f:
        f.mktree("Events", {"jet_image": ("float32", (125, 125, 3)), "label": "int32", "jet_mass": "float64", "jet_pt": "float64"})
        f["Events"].extend({"jet_image": x.transpose(0, 2, 3, 1), "label": np.array([1, 0], np.int32),
                            "jet_mass": np.array([1.0, 2.0]), "jet_pt": np.array([3.0, 4.0])})
    with open_reader(tmp_path / "img.root", load_data_config(CONFIG_DIR / "root_image.yaml")) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.images, x)
    np.testing.assert_array_equal(c.targets, [[1, 3], [2, 4]])


def test_root_hits_config_reads_its_layout(tmp_path):
    b = {}
    for ch, v in (("track", 1.0), ("ecal", 2.0), ("hcal", 3.0)):
        b[f"{ch}_pt" if ch == "track" else f"{ch}_energy"] = ak.Array([[v], []])
        b[f"{ch}_eta"], b[f"{ch}_phi"] = ak.Array([[0.1], []]), ak.Array([[0.2], []])
    b.update(label=np.array([0, 1], np.int32), jet_mass=np.array([1.0, 2.0]), jet_pt=np.array([3.0, 4.0]))
    path = write_root_branches(tmp_path / "hits.root", b)
    with open_reader(path, load_data_config(CONFIG_DIR / "root_hits.yaml")) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.counts, [3, 0])
    np.testing.assert_array_equal(c.values, np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(c.eta, 0.0, atol=1e-7)


def test_energyflow_config_reads_its_layout(tmp_path):
    x = np.zeros((2, 3, 4))
    x[0, :2] = [[100, 0.5, 2.0, 22], [300, 0.1, 2.4, 211]]
    np.savez(tmp_path / "QG_jets.npz", X=x, y=np.array([1.0, 0.0]))
    with open_reader(tmp_path / "QG_jets.npz", load_data_config(CONFIG_DIR / "energyflow_qg.yaml")) as r:
        c = r.read(0, 2)
    np.testing.assert_array_equal(c.counts, [2, 0])
    np.testing.assert_array_equal(c.values[:, 0], [100, 300])
    np.testing.assert_allclose(c.eta, [0.3, -0.1], atol=1e-6)  # axis at y = 0.2, phi = 2.3
    np.testing.assert_allclose(c.phi, [-0.3, 0.1], atol=1e-6)
    np.testing.assert_array_equal(c.labels, [1, 0])  # classes [gluon, quark]: 1 = quark
