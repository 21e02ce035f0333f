"""`graphevent preprocess` / `inspect` through the real CLI entry point."""

import json

import h5py
import numpy as np
import pytest

from graphevent.cli.app import main
from graphevent.data.testing import make_jet_images, write_ml4sci_hdf5

CONFIG = """
name: cli
reader: {format: ml4sci_hdf5, image_key: X_jets, label_key: y, target_keys: [m0, pt]}
classes: [quark, gluon]
channels:
  - {name: tracks, transform: log1p}
  - {name: ecal, transform: log1p}
  - {name: hcal, transform: log1p, upsample: 5}
graph: {k: 8}
chunk_size: 16
"""


@pytest.fixture()
def cfg(tmp_path):
    p = tmp_path / "data.yaml"
    p.write_text(CONFIG)
    return p


def run(capsys, *args):
    code = main(list(map(str, args)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_preprocess_then_inspect(tmp_path, cfg, tiny_raw, capsys):
    code, out, _ = run(capsys, "preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "ds", "--workers", "2")
    assert code == 0
    assert "64 events" in out and "union+collapse (this dataset)" in out
    code, out, _ = run(capsys, "inspect", tmp_path / "ds")
    assert code == 0 and "nodes per event" in out.lower()


def one_line_error(capsys, args, match):
    code, _, err = run(capsys, *args)
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    text = " ".join(lines)
    assert "Traceback" not in err
    assert match in text, text
    return text


def test_missing_file(tmp_path, cfg, capsys):
    one_line_error(capsys, ["preprocess", tmp_path / "nope.h5", "-c", cfg, "-o", tmp_path / "o"], "nope.h5: input file not found")
    assert not (tmp_path / "o").exists()


def test_unknown_format(tmp_path, cfg, tiny_raw, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("ml4sci_hdf5", "jpeg"))
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", bad, "-o", tmp_path / "o"], "invalid value 'jpeg'; expected one of 'ml4sci_hdf5'")


def test_unknown_config_key(tmp_path, cfg, tiny_raw, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG + "colour: red\n")
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", bad, "-o", tmp_path / "o"], "unknown key 'colour'; valid keys:")


def test_key_of_another_reader(tmp_path, cfg, tiny_raw, capsys):
    accepted = "format 'ml4sci_hdf5' accepts file_labels, format, image_key, label, label_key, layout, target_keys"
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("label_key: y,", "label_key: y, tree: Events,"))
    text = one_line_error(capsys, ["preprocess", tiny_raw, "-c", bad, "-o", tmp_path / "o"], "")
    assert text == f"error: {bad}.reader.tree: not a key of format 'ml4sci_hdf5' (a key of root_hits, root_image); {accepted}"
    text = one_line_error(capsys, ["preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "o", "--set", "reader.particles_key=X"], "")
    assert text == f"error: --set reader.particles_key=X: not a key of format 'ml4sci_hdf5' (a key of particles); {accepted}"


def test_bad_config_value_via_set(tmp_path, cfg, tiny_raw, capsys):
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "o", "--set", "graph.k=0"], "--set graph.k=0: invalid value 0; expected an integer in 1..1024")


def test_missing_key(tmp_path, cfg, capsys):
    arr = make_jet_images(8)
    del arr["m0"]
    raw = write_ml4sci_hdf5(tmp_path / "nom0.h5", arr)
    one_line_error(capsys, ["preprocess", raw, "-c", cfg, "-o", tmp_path / "o"], "nom0.h5")
    assert not (tmp_path / "o").exists()


def test_wrong_channel_count(tmp_path, cfg, capsys):
    arr = make_jet_images(8)
    arr["X_jets"] = arr["X_jets"][..., :2]
    raw = write_ml4sci_hdf5(tmp_path / "twoch.h5", arr)
    msg = one_line_error(capsys, ["preprocess", raw, "-c", cfg, "-o", tmp_path / "o"], "twoch.h5")
    assert "(8, 125, 125, 2)" in msg and "X_jets" in msg


def test_label_outside_classes(tmp_path, cfg, capsys):
    arr = make_jet_images(8)
    arr["y"][4] = 2
    raw = write_ml4sci_hdf5(tmp_path / "lab.h5", arr)
    one_line_error(capsys, ["preprocess", raw, "-c", cfg, "-o", tmp_path / "o"], "label of event 4 is 2; expected 0..1")
    assert not (tmp_path / "o").exists()


def test_nan_pixels_fail(tmp_path, cfg, capsys):
    arr = make_jet_images(8)
    arr["X_jets"][6, 0, 0, 2] = np.nan
    raw = write_ml4sci_hdf5(tmp_path / "nan.h5", arr)
    one_line_error(capsys, ["preprocess", raw, "-c", cfg, "-o", tmp_path / "o"], "nan.h5: event 6 has NaN/Inf values")
    assert not (tmp_path / "o").exists()


def test_corrupt_file(tmp_path, cfg, tiny_raw, capsys):
    data = tiny_raw.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: len(data) // 3])
    one_line_error(capsys, ["preprocess", bad, "-c", cfg, "-o", tmp_path / "o"], "trunc.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("this is not HDF5")
    one_line_error(capsys, ["preprocess", txt, "-c", cfg, "-o", tmp_path / "o"], "notes.h5")
    assert not (tmp_path / "o").exists()


def test_existing_output_without_overwrite(tmp_path, cfg, tiny_raw, capsys):
    assert run(capsys, "preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "ds")[0] == 0
    before = (tmp_path / "ds" / "manifest.json").read_text()
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "ds"], "pass --overwrite to replace it")
    assert (tmp_path / "ds" / "manifest.json").read_text() == before


def test_debug_shows_traceback_and_keeps_exit_code_2(tmp_path, cfg, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHEVENT_DEBUG", "0")  # restored after the test (--debug sets it)
    code = main(["--debug", "preprocess", str(tmp_path / "nope.h5"), "-c", str(cfg), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err and "graphevent.errors.DataError:" in err and "nope.h5: input file not found" in err


@pytest.mark.parametrize("value", ["~", "", "null", " "])
def test_set_without_value_is_rejected(tmp_path, cfg, tiny_raw, capsys, value):
    code, _, err = run(capsys, "preprocess", tiny_raw, "-c", cfg, "-o", tmp_path / "o", "--set", f"graph.k={value}")
    assert code == 2 and not (tmp_path / "o").exists()
    shown = value.strip() or "empty"
    assert f"--set 'graph.k={value}': no value ({shown}); expected KEY=VALUE. To keep a key's default, leave out its --set" in err


def test_usage_error_exits_2(capsys):
    code, _, err = run(capsys, "nosuchcmd")
    assert code == 2 and "No such command 'nosuchcmd'" in err
    code, _, err = run(capsys, "preprocess", "--workers", "zero")
    assert code == 2


def test_preprocess_command_does_not_import_torch(tmp_path, cfg, tiny_raw):
    # importing torch + PyG took 4 of the 7 s of a 1,024-event run; the summary needs no torch
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from graphevent.cli.app import main\n"
        f"assert main(['preprocess', {str(tiny_raw)!r}, '-c', {str(cfg)!r}, '-o', {str(tmp_path / 'ds')!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "ds" / "manifest.json").exists()
