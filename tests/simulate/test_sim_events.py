"""Real Pythia runs of `simulate events` (a few whole events): reproducibility, classes, truth, layouts, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from graphevent.cli.app import main
from graphevent.errors import ConfigError, OutputError
from graphevent.simulate import BarrelGrid, EventSettings, generate_events

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

N = 6  # two events of each class, one block per class


def read(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f.keys()} | {"meta": json.loads(f.attrs["graphevent_simulate"])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    one = generate_events(N, root / "w1.h5", seed=3, workers=1, progress=False)
    two = generate_events(N, root / "w2.h5", seed=3, workers=2, progress=False)
    return {"root": root, "w1": read(root / "w1.h5"), "w2": read(root / "w2.h5"), "summary": one, "summary2": two}


def test_same_seed_gives_identical_files_whatever_the_number_of_workers(runs):
    a, b = runs["w1"], runs["w2"]
    assert sorted(a) == sorted(b) == ["X_jets", "ht", "m_gg", "meta", "y"]
    for key in ("X_jets", "ht", "m_gg", "y"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert runs["summary"]["events_tried"] == runs["summary2"]["events_tried"]


def test_whole_barrel_images_and_balanced_classes(runs):
    a, s = runs["w1"], runs["summary"]
    assert a["X_jets"].shape == (N, 170, 360, 3) and a["X_jets"].dtype == np.float32
    np.testing.assert_array_equal(a["y"], [0, 0, 1, 1, 2, 2])
    assert s["counts"] == {"diphoton": 2, "hgg": 2, "gamma_jet": 2} and s["labels"] == {"diphoton": 0, "hgg": 1, "gamma_jet": 2}
    assert 0 < s["acceptance"] < 1 and s["events_tried"] >= N
    meta = a["meta"]
    assert meta["generator"] == "graphevent simulate events" and meta["targets"].keys() == {"m_gg", "ht"}
    assert meta["grid"]["phi_range"] == pytest.approx([-np.pi, np.pi]) and meta["grid"]["pixel_phi"] == pytest.approx(np.pi / 180)
    for img in a["X_jets"]:
        # every channel has deposits, spread over the barrel (not a jet-sized window)
        assert all(np.count_nonzero(img[..., c]) > 0 for c in range(3))
        cols = np.flatnonzero(img[..., 1].any(axis=0))
        assert cols.max() - cols.min() > 180


def test_truth_fields(runs):
    a = runs["w1"]
    m, ht, y = a["m_gg"], a["ht"], a["y"]
    assert np.all((m >= 100) & (m <= 150))
    np.testing.assert_allclose(m[y == 1], 125.0, atol=0.5)  # the Higgs: width 4 MeV
    assert np.all(ht > 40)  # at least the two hard objects' pT > 20 GeV, both in |eta| < 1.44
    # photon classes: the two photons' energy, >= 40 GeV, is in the ECAL
    ecal = a["X_jets"][..., 1].sum(axis=(1, 2))
    assert np.all(ecal[y != 2] > 40)


def test_smaller_sample_is_a_prefix_of_each_block_parquet_matches_hdf5_other_seed_differs(runs):
    small = runs["root"] / "small.parquet"
    generate_events(3, small, seed=3, progress=False)
    table = pq.read_table(small)
    assert table.column_names == ["X_jets", "y", "m_gg", "ht"]
    images = np.array([np.asarray(x, dtype=np.float32) for x in table.column("X_jets").to_pylist()])
    assert images.shape == (3, 3, 170, 360)  # E2E: channels first
    a = runs["w1"]
    first = [0, 2, 4]  # the first event of each class's block
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), a["X_jets"][first])
    np.testing.assert_allclose(table.column("m_gg").to_numpy(), a["m_gg"][first], rtol=1e-6)
    np.testing.assert_array_equal(table.column("y").to_numpy(), [0, 1, 2])
    other = runs["root"] / "other.h5"
    generate_events(3, other, seed=4, progress=False)
    assert not np.array_equal(read(other)["m_gg"], a["m_gg"][first])


def test_existing_output_is_kept_unless_overwrite(runs):
    path = runs["root"] / "w1.h5"
    before = path.read_bytes()
    with pytest.raises(OutputError, match=r"w1.h5.*exists"):
        generate_events(3, path, seed=3, progress=False)
    assert path.read_bytes() == before
    assert not [p.name for p in runs["root"].iterdir() if ".tmp" in p.name]


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match=r"^--events: invalid value 0; expected an integer >= 1$"):
        generate_events(0, tmp_path / "x.h5", progress=False)
    with pytest.raises(ConfigError, match=r"^settings: mass window \(150.0, 100.0\); expected 0 <= min < max$"):
        generate_events(3, tmp_path / "x.h5", settings=EventSettings(mass_min=150.0, mass_max=100.0), progress=False)
    with pytest.raises(ConfigError, match=r"^grid.n_eta: invalid value 171; expected a positive multiple of hcal_tower=5$"):
        generate_events(3, tmp_path / "x.h5", grid=BarrelGrid(n_eta=171), progress=False)
    assert not list(tmp_path.iterdir())


def test_cli_writes_the_file_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "ev.h5"
    code = main(["simulate", "events", "--events", "30", "--out", str(out), "--seed", "5"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "30 (10 diphoton y=0, 10 hgg y=1, 10 gamma_jet y=2)" in text
    with h5py.File(out) as f:
        assert f["X_jets"].shape == (30, 170, 360, 3)
        np.testing.assert_array_equal(np.bincount(f["y"][:].astype(int)), [10, 10, 10])
    code = main(["simulate", "events", "--events", "3", "--out", str(out)])
    assert code == 2 and "exists" in capsys.readouterr().err
    assert main(["simulate", "events", "--events", "3", "--out", str(out), "--overwrite"]) == 0
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["y"][:], [0, 1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.h5"]
