"""File layouts written by the simulation: ML4SCI HDF5, E2E parquet, energyflow npz."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from graphevent.config.base import from_dict
from graphevent.config.data import DataConfig
from graphevent.io import open_reader
from graphevent.simulate.writers import E2EParquetWriter, EnergyFlowNpzWriter, ML4SCIHDF5Writer


def fake_block(n: int, seed: int):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 125, 125, 3), np.float32)
    idx = rng.integers(0, 125, size=(n, 40, 2))
    for k in range(n):
        images[k, idx[k, :, 0], idx[k, :, 1], rng.integers(0, 3, 40)] = rng.uniform(0.1, 50, 40)
    return images, rng.integers(0, 2, n).astype(np.float32), rng.uniform(5, 100, n), rng.uniform(500, 550, n)


def qg_config(fmt: str, layout: str) -> DataConfig:
    return from_dict(
        DataConfig,
        {
            "reader": {"format": fmt, "image_key": "X_jets", "layout": layout, "label_key": "y", "target_keys": ["m0", "pt"]},
            "classes": ["quark", "gluon"],
            "channels": [{"name": "tracks"}, {"name": "ecal"}, {"name": "hcal", "upsample": 5}],
        },
        where="test",
    )


def test_hdf5_layout_is_ml4sci_and_reads_back_through_the_hdf5_reader(tmp_path):
    blocks = [fake_block(3, 0), fake_block(2, 1)]
    path = tmp_path / "qg.h5"
    with ML4SCIHDF5Writer(path, 5, {"seed": 1}) as writer:
        for block in blocks:
            writer.write(*block)
    images = np.concatenate([b[0] for b in blocks])
    with h5py.File(path) as f:
        assert sorted(f.keys()) == ["X_jets", "m0", "pt", "y"]
        assert f["X_jets"].shape == (5, 125, 125, 3) and f["X_jets"].dtype == np.float32
        assert f["X_jets"].compression == "gzip" and f["X_jets"].shuffle
        for key in ("y", "m0", "pt"):
            assert f[key].shape == (5,) and f[key].dtype == np.float32
        np.testing.assert_array_equal(f["X_jets"][:], images)
        np.testing.assert_array_equal(f["y"][:], np.concatenate([b[1] for b in blocks]))
        np.testing.assert_allclose(f["pt"][:], np.concatenate([b[3] for b in blocks]), rtol=1e-6)
        assert '"seed": 1' in f.attrs["graphevent_simulate"]
    with open_reader(path, qg_config("ml4sci_hdf5", "channels_last")) as reader:
        chunk = reader.read(0, 5)
    np.testing.assert_array_equal(chunk.images, images.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(chunk.labels, np.concatenate([b[1] for b in blocks]).astype(np.int64))


def test_parquet_layout_is_e2e_one_row_group_per_event_channels_first(tmp_path):
    images, y, m0, pt = fake_block(3, 2)
    path = tmp_path / "qg.parquet"
    with E2EParquetWriter(path, 3, {"seed": 2}) as writer:
        writer.write(images, y, m0, pt)
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_row_groups == 3 and pf.metadata.num_rows == 3
    assert pf.schema_arrow.names == ["X_jets", "y", "m0", "pt"]
    row = pf.read_row_group(1).to_pylist()[0]
    assert np.array(row["X_jets"]).shape == (3, 125, 125)
    np.testing.assert_array_equal(np.array(row["X_jets"], dtype=np.float32), images[1].transpose(2, 0, 1))
    assert row["y"] == y[1] and row["m0"] == m0[1] and row["pt"] == pt[1]
    with open_reader(path, qg_config("e2e_parquet", "channels_first")) as reader:
        chunk = reader.read(0, 3)
    np.testing.assert_array_equal(chunk.images, images.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(chunk.targets, np.stack([m0, pt], axis=1), rtol=1e-6)


def test_npz_layout_is_energyflow_zero_padded_with_quark_label_one(tmp_path):
    jets = [np.arange(8.0).reshape(2, 4), np.arange(20.0).reshape(5, 4) + 1, np.ones((1, 4))]
    path = tmp_path / "qg_particles.npz"
    writer = EnergyFlowNpzWriter(path)
    writer.write(jets[:2], np.array([True, False]))
    writer.write(jets[2:], np.array([True]))
    writer.close(block=2)
    with np.load(path) as f:  # allow_pickle stays False
        assert sorted(f.files) == ["X", "y"]
        X, y = f["X"], f["y"]
    assert X.shape == (3, 5, 4) and X.dtype == np.float64
    np.testing.assert_array_equal(y, [1.0, 0.0, 1.0])
    for k, jet in enumerate(jets):
        np.testing.assert_array_equal(X[k, : len(jet)], jet)
        assert np.all(X[k, len(jet) :] == 0)


def test_shipped_sample_has_the_ml4sci_layout_and_balanced_labels():
    import json

    from graphevent.simulate import sample_path

    path = sample_path()
    assert path.name == "qg_sample.h5" and path.stat().st_size < 6_000_000
    with h5py.File(path) as f:
        assert sorted(f.keys()) == ["X_jets", "m0", "pt", "y"]
        assert f["X_jets"].shape == (2000, 125, 125, 3) and f["X_jets"].dtype == np.float32
        y, pt, m0 = f["y"][:], f["pt"][:], f["m0"][:]
        first = f["X_jets"][0]
        meta = json.loads(f.attrs["graphevent_simulate"])
    np.testing.assert_array_equal(np.bincount(y.astype(int)), [1000, 1000])
    np.testing.assert_array_equal(y[:25], 0)  # the first block is quark jets
    assert np.all((pt > 500) & (pt < 550)) and np.all((m0 > 0) & (m0 < pt))
    assert meta["seed"] == 1 and meta["labels"] == {"quark": 0, "gluon": 1}
    # HCAL is constant over each 5x5 tower.
    towers = first[..., 2].reshape(25, 5, 25, 5)
    assert np.all(towers == towers[:, :1, :, :1])


def test_shipped_sample_is_reproduced_without_the_veto(tmp_path):
    """The shipped sample predates the parton-level veto: seed 1 with ``veto_scale=0`` gives its
    jets again (blocks are prefixes: 4 jets = rows 0, 1 of quark block 0 and 25, 26 of gluon block 0)."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from graphevent.simulate import generate_qg, sample_path
    from graphevent.simulate.pythia import QGSettings

    generate_qg(4, tmp_path / "x.h5", seed=1, progress=False, particles=False, settings=QGSettings(veto_scale=0))
    rows = [0, 1, 25, 26]
    with h5py.File(tmp_path / "x.h5") as new, h5py.File(sample_path()) as shipped:
        for key in ("X_jets", "y", "m0", "pt"):
            np.testing.assert_array_equal(new[key][:], shipped[key][rows], err_msg=key)
