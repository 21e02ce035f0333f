"""`graphevent predict`: raw files -> the run's preprocessing -> one row per event."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from graphevent.cli.app import main
from graphevent.data.dataset import GraphDataset
from graphevent.errors import ConfigError, DataError
from graphevent.evaluate.predict import PredictOptions, predict, predict_files
from graphevent.evaluate.predictions import read_metadata, read_predictions
from graphevent.nn.checkpoint import load_run


@pytest.fixture(scope="module")
def raw(tiny_dataset):
    """The raw file the tiny dataset was preprocessed from (96 events, labels y, targets m0 and pt)."""
    return tiny_dataset.parent / f"{tiny_dataset.name}-raw.h5"


@pytest.fixture(scope="module")
def unlabelled(raw, tmp_path_factory):
    """The first 40 events of ``raw`` with images only: no y, no m0, no pt."""
    path = tmp_path_factory.mktemp("new") / "new.h5"
    with h5py.File(raw, "r") as src, h5py.File(path, "w") as dst:
        dst["X_jets"] = src["X_jets"][:40]
    return path


def test_predict_matches_the_dataset_graphs(trained_runs, tiny_dataset, raw, tmp_path, one_torch_thread):
    out = tmp_path / "pred.parquet"
    result = predict_files(trained_runs["mt"], [raw], out, PredictOptions(batch_size=7, device="cpu"))
    cols = read_predictions(out)
    assert result.events == 96 and len(cols["index"]) == 96 and result.unlabelled == []
    np.testing.assert_array_equal(cols["index"], np.arange(96))
    np.testing.assert_array_equal(cols["event_id"], np.arange(96))
    assert set(cols["source_file"]) == {raw.name} and set(cols["source"]) == {0}
    with h5py.File(raw, "r") as f:
        np.testing.assert_array_equal(cols["label"], f["y"][:].astype(np.int64))
        np.testing.assert_allclose(cols["true_m0"], f["m0"][:])
    # every split of the dataset: the same graphs, so the same outputs as the dataset's events
    model, _, _ = load_run(trained_runs["mt"])
    for split in ("train", "val", "test"):
        ds = GraphDataset(tiny_dataset, split)
        ref = predict(model, ds, batch_size=5)
        ids = ds.event_ids
        np.testing.assert_allclose(cols["score_gluon"][ids], ref["score_gluon"], atol=1e-5)
        np.testing.assert_allclose(cols["pred_m0"][ids], ref["pred_m0"], rtol=1e-5)
    assert read_metadata(out)["classes"] == ["quark", "gluon"]
    assert not list(tmp_path.glob(".pred.parquet.tmp*"))


def test_predict_cli_unlabelled_file_two_inputs(trained_runs, raw, unlabelled, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "p.parquet"
    code = main(["predict", str(trained_runs["mt"]), "--input", str(unlabelled), "--input", str(raw), "--out", str(out),
                 "--no-progress", "--device", "cpu"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "no labels in new.h5" in text and "no m0, pt in new.h5" in text and "136 events scored" in text
    cols = read_predictions(out)
    assert len(cols["index"]) == 136
    np.testing.assert_array_equal(cols["event_id"], np.arange(136))  # running number over the inputs
    assert list(cols)[:4] == ["event_id", "source", "source_file", "index"]
    np.testing.assert_array_equal(cols["source"], [0] * 40 + [1] * 96)
    np.testing.assert_array_equal(cols["index"], np.r_[np.arange(40), np.arange(96)])
    assert (cols["label"][:40] == -1).all() and (cols["label"][40:] >= 0).all()
    assert np.isnan(cols["true_pt"][:40]).all() and np.isfinite(cols["true_pt"][40:]).all()
    # the same events scored from the unlabelled copy and from the original
    np.testing.assert_allclose(cols["score_quark"][:40], cols["score_quark"][40:80], atol=1e-6)


def test_predict_root_output_autoencoder(trained_runs, unlabelled, tmp_path, one_torch_thread):
    out = tmp_path / "p.root"
    predict_files(trained_runs["ae"], [unlabelled], out, PredictOptions(device="cpu"))
    cols = read_predictions(out)
    assert set(cols) >= {"source", "index", "n_nodes", "label", "recon_error_tracks", "recon_error_hcal"}
    assert "source_file" not in cols  # strings: in the metadata
    assert read_metadata(out)["sources"] == [str(unlabelled.resolve())]
    assert np.isfinite(cols["recon_error_ecal"]).all() and len(cols["index"]) == 40


def test_predict_errors_leave_no_file(trained_runs, raw, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["X_jets"] = np.zeros((3, 125, 125, 2), np.float32)
    out = tmp_path / "p.parquet"
    with pytest.raises(DataError, match=r"bad.h5: key 'X_jets' has shape \(3, 125, 125, 2\); expected \(N, 125, 125, 3\)"):
        predict_files(trained_runs["mt"], [raw, bad], out, PredictOptions(device="cpu"))
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".p.parquet*"))
    with pytest.raises(ConfigError, match=r"--out .*p.csv: unknown predictions format '.csv'; expected a file ending in .parquet or .root"):
        predict_files(trained_runs["mt"], [raw], tmp_path / "p.csv", PredictOptions(device="cpu"))
    code = main(["predict", str(trained_runs["mt"]), "--input", str(tmp_path / "missing.h5"), "--out", str(out)])
    assert code == 2 and "missing.h5: input file not found" in capsys.readouterr().err


def test_predict_config_must_keep_the_preprocessing(trained_runs, raw, tmp_path):
    from graphevent.config.base import dump_yaml
    from graphevent.data.testing import tiny_data_config

    other = tmp_path / "k4.yaml"
    dump_yaml(tiny_data_config(k=4), other)
    with pytest.raises(ConfigError, match=r"--config .*k4.yaml: graph.k is 4 \(run: 8\) differs from the preprocessing"):
        predict_files(trained_runs["mt"], [raw], tmp_path / "p.parquet", PredictOptions(config=other, device="cpu"))
    same = tmp_path / "same.yaml"
    cfg = tiny_data_config(k=8)
    dump_yaml(cfg, same)
    text = same.read_text().replace("chunk_size: 32", "chunk_size: 50")
    same.write_text(text)
    r = predict_files(trained_runs["mt"], [raw], tmp_path / "p.parquet", PredictOptions(config=same, device="cpu"))
    assert r.events == 96
    assert json.loads((trained_runs["mt"] / "dataset.json").read_text())["data_config"]["graph"]["k"] == 8


def test_a_failure_while_streaming_leaves_no_file(trained_runs, raw, tmp_path):
    nan = tmp_path / "nan.h5"
    with h5py.File(raw, "r") as src, h5py.File(nan, "w") as dst:
        images = src["X_jets"][:10]
        images[7, 60, 60, 0] = np.nan
        dst["X_jets"] = images
    out = tmp_path / "p.parquet"
    with pytest.raises(DataError, match=r"nan.h5: event 7 has NaN/Inf values"):
        predict_files(trained_runs["mt"], [raw, nan], out, PredictOptions(device="cpu"))  # raw's 96 events written first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.h5"]


@pytest.fixture(scope="module")
def renamed(raw, tmp_path_factory):
    """``raw`` with its images under another key, ``images``."""
    path = tmp_path_factory.mktemp("renamed") / "renamed.h5"
    with h5py.File(raw, "r") as src, h5py.File(path, "w") as dst:
        dst["images"] = src["X_jets"][:]
        for key in ("y", "m0", "pt"):
            dst[key] = src[key][:]
    return path


def test_predict_reads_inputs_with_reader_overrides(trained_runs, raw, renamed, tmp_path, capsys, one_torch_thread):
    ref = read_predictions(_predict(trained_runs, raw, tmp_path / "ref.parquet"))
    out = tmp_path / "p.parquet"
    code = main(["predict", str(trained_runs["mt"]), "-i", str(renamed), "-o", str(out), "--no-progress", "--device", "cpu",
                 "--set", "reader.image_key=images", "--set", "chunk_size=40"])
    assert code == 0, capsys.readouterr()
    cols = read_predictions(out)
    np.testing.assert_array_equal(cols["event_id"], ref["event_id"])
    np.testing.assert_allclose(cols["score_gluon"], ref["score_gluon"], atol=1e-6)
    assert read_metadata(out)["data_config"]["reader"]["image_key"] == "images"
    assert read_metadata(out)["data_config"]["chunk_size"] == 40


def _predict(trained_runs, path, out):
    predict_files(trained_runs["mt"], [path], out, PredictOptions(device="cpu"))
    return out


@pytest.mark.parametrize("override, message", [
    ("graph.k=4", "--set graph.k=4: predict reads the inputs with the run's preprocessing; only reader.* keys and "
                  "chunk_size may be set, not 'graph.k'"),
    ("reader=x", "--set reader=x: predict reads the inputs with the run's preprocessing; only reader.* keys and "
                 "chunk_size may be set, not 'reader'"),
    ("classes=[a,b]", "not 'classes'"),
    ("reader.imag_key=images", "--set reader.imag_key=images: not a key of format 'ml4sci_hdf5' (no format reads it); "
                               "format 'ml4sci_hdf5' accepts file_labels, format, image_key, label, label_key, layout, target_keys"),
    ("chunk_size=0", "--set chunk_size=0: invalid value 0; expected >= 1"),
])
def test_predict_refuses_overrides_other_than_the_reader(trained_runs, raw, tmp_path, capsys, override, message):
    out = tmp_path / "p.parquet"
    code = main(["predict", str(trained_runs["mt"]), "-i", str(raw), "-o", str(out), "--no-progress", "--device", "cpu",
                 "--set", override])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists() and not list(tmp_path.glob(".p.parquet*"))
