"""Real Pythia runs (a few jets): reproducibility, worker independence, cuts, layouts, CLI."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from graphevent.cli.app import main
from graphevent.errors import OutputError, DataError
from graphevent.simulate import generate_qg, particles_path

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

N = 4  # two quark jets then two gluon jets (one block each)


def read(path):
    with h5py.File(path) as f:
        arrays = {k: f[k][:] for k in f.keys()}
    with np.load(particles_path(path)) as f:
        arrays.update(X=f["X"], y_ef=f["y"])
    return arrays


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    one = generate_qg(N, root / "w1.h5", seed=7, workers=1, progress=False)
    two = generate_qg(N, root / "w2.h5", seed=7, workers=2, progress=False)
    return {"root": root, "w1": read(root / "w1.h5"), "w2": read(root / "w2.h5"), "summary": one, "summary2": two}


def test_same_seed_gives_identical_files_whatever_the_number_of_workers(runs):
    a, b = runs["w1"], runs["w2"]
    assert sorted(a) == sorted(b) == ["X", "X_jets", "m0", "pt", "y", "y_ef"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert runs["summary"]["events_tried"] == runs["summary2"]["events_tried"]


def test_layout_labels_and_jet_window(runs):
    a = runs["w1"]
    assert a["X_jets"].shape == (N, 125, 125, 3) and a["X_jets"].dtype == np.float32
    np.testing.assert_array_equal(a["y"], [0, 0, 1, 1])  # ML4SCI: 0 quark, 1 gluon
    np.testing.assert_array_equal(a["y_ef"], [1, 1, 0, 0])  # energyflow: 1 quark, 0 gluon
    assert np.all((a["pt"] > 500) & (a["pt"] < 550))
    assert np.all((a["m0"] > 0) & (a["m0"] < a["pt"]))
    s = runs["summary"]
    assert (s["n_quark"], s["n_gluon"], s["n_events"]) == (2, 2, N)
    assert 0 < s["acceptance"] < 1 and s["events_tried"] >= N


def test_constituents_add_up_to_the_jet_and_images_are_centred(runs):
    a = runs["w1"]
    X = a["X"]
    assert X.shape[0] == N and X.shape[2] == 4
    for k in range(N):
        pt, rap, phi, pid = X[k].T
        real = pt > 0
        assert np.all(np.diff(pt[real]) <= 0)  # pT-ordered, zero padding after
        assert np.all(pt[~real] == 0) and np.all(pid[~real] == 0)
        jet_pt = np.hypot((pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum())
        assert jet_pt == pytest.approx(a["pt"][k], rel=1e-5)
        jet_phi = np.arctan2((pt * np.sin(phi)).sum(), (pt * np.cos(phi)).sum())
        assert np.all(np.abs(phi[real] - jet_phi) < 0.5)  # phi kept within pi of the jet: no wrap
        assert np.all(np.abs(rap[real] - np.average(rap[real], weights=pt[real])) < 0.5)
    # The pT-weighted track centroid sits near the central pixel (jet axis).
    rows, cols = np.indices((125, 125))
    for img in a["X_jets"]:
        tracks = img[..., 0]
        assert abs((tracks * rows).sum() / tracks.sum() - 62) < 8
        assert abs((tracks * cols).sum() / tracks.sum() - 62) < 8
        assert np.count_nonzero(img[..., 1]) > 20 and np.count_nonzero(img[..., 2]) >= 25


def test_smaller_sample_is_a_prefix_of_each_block_and_parquet_matches_hdf5(runs):
    out = runs["root"] / "small.parquet"
    summary = generate_qg(2, out, seed=7, workers=1, progress=False, particles=False)
    assert summary["format"] == "parquet" and summary["particles"] is None
    assert not particles_path(out).exists()
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_row_groups == 2
    table = pf.read().to_pydict()
    a = runs["w1"]
    # The 2-jet sample holds the first jet of the quark block and of the gluon block.
    for row, k in enumerate([0, 2]):
        np.testing.assert_array_equal(np.array(table["X_jets"][row], np.float32), a["X_jets"][k].transpose(2, 0, 1))
        assert table["y"][row] == a["y"][k]
        assert table["pt"][row] == pytest.approx(a["pt"][k], rel=1e-6)


def test_other_seed_gives_other_jets(runs):
    out = runs["root"] / "seed8.h5"
    generate_qg(2, out, seed=8, workers=1, progress=False, particles=False)
    with h5py.File(out) as f:
        pt = f["pt"][:]
    assert not np.isin(pt, runs["w1"]["pt"]).any()


def test_existing_output_is_kept_unless_overwrite_and_no_temp_files_remain(runs):
    out = runs["root"] / "w1.h5"
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"w1.h5: already exists; pass --overwrite to replace it"):
        generate_qg(2, out, seed=1, progress=False)
    assert out.read_bytes() == before
    assert not list(runs["root"].glob(".*tmp*"))


def test_overwrite_replaces_only_simulated_files(runs, tmp_path):
    """``--overwrite`` replaces a file of graphevent simulate (its signature: the HDF5
    attribute, the npz entry), never a user's file of the same name; an input-like file
    is compared by content, not by name."""
    from graphevent.utils.outfile import signature

    root = runs["root"]
    assert signature(root / "w1.h5") == "simulate" and signature(root / "w1_particles.npz") == "simulate"
    mine = tmp_path / "mine.h5"
    with h5py.File(mine, "w") as f:
        f["X_jets"] = np.zeros((1, 125, 125, 3), np.float32)
    before = mine.read_bytes()
    with pytest.raises(OutputError, match=r"mine.h5: was not written by this command \(it carries no signature of a graphevent simulation\)"):
        generate_qg(2, mine, seed=1, progress=False, overwrite=True, particles=False)
    assert mine.read_bytes() == before
    own = tmp_path / "own.h5"
    own.write_bytes((root / "w1.h5").read_bytes())
    generate_qg(2, own, seed=3, progress=False, overwrite=True, particles=False)
    with h5py.File(own) as f:
        assert f["X_jets"].shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.h5", "own.h5"]


def test_cli_writes_the_file_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    code = main(["simulate", "qg", "--events", "2", "--out", str(out), "--seed", "7", "--no-particles"])
    assert code == 0
    with h5py.File(out) as f:
        assert f["X_jets"].shape == (2, 125, 125, 3)
    text = capsys.readouterr().out
    assert "1 quark y=0, 1 gluon y=1" in text and "jets/s" in text


def test_veto_check_mode_records_without_changing_the_jets_and_the_veto_drops_events():
    """``veto="check"`` asks the parton-level veto on every event but never vetoes, so it must
    give exactly the jets of ``veto="off"``; ``veto="on"`` drops events and keeps only jets
    inside the cuts."""
    from graphevent.simulate.pythia import JetGenerator, QGSettings, block_seed

    settings = QGSettings()
    seed = block_seed(5, "gluon", 0)
    off = JetGenerator("gluon", settings, veto="off").generate(2, seed)
    check_gen = JetGenerator("gluon", settings, veto="check")
    check = check_gen.generate(2, seed)
    np.testing.assert_array_equal(off.pt, check.pt)
    np.testing.assert_array_equal(off.mass, check.mass)
    assert off.n_tried == check.n_tried and check.n_vetoed == 0 and off.n_vetoed == 0
    # one decision per generated event (the warm-up event of __init__ included)
    assert check_gen._veto.checked == check.n_tried + 1
    on = JetGenerator("gluon", settings, veto="on").generate(2, seed)
    assert on.n_vetoed > 0 and len(on) == 2
    assert np.all((on.pt > 500) & (on.pt < 550)) and np.all(np.abs(on.rap) < 1.7)
