"""Checks that need no Pythia: argument validation and the message when the [sim] extra is missing."""

from __future__ import annotations

import importlib.util

import pytest

from graphevent.cli.app import main
from graphevent.errors import ConfigError
from graphevent.simulate import generate_qg
from graphevent.simulate.pythia import QGSettings


def test_bad_arguments_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"--format: invalid value 'root'; expected one of 'hdf5', 'parquet'"):
        generate_qg(2, tmp_path / "x.h5", fmt="root", progress=False)
    with pytest.raises(ConfigError, match=r"--events: invalid value 0; expected an integer >= 1"):
        generate_qg(0, tmp_path / "x.h5", progress=False)
    with pytest.raises(ConfigError, match=r"settings.pthat_min: invalid value 600.0; expected 0 <= pthat_min < jet_pt_min"):
        generate_qg(2, tmp_path / "x.h5", settings=QGSettings(pthat_min=600.0), progress=False)
    with pytest.raises(ConfigError, match=r"settings: veto_scale=-1.0, .*veto_jet_r=1.0; expected all >= 0 \(veto_scale 0 = no veto\)"):
        generate_qg(2, tmp_path / "x.h5", settings=QGSettings(veto_scale=-1.0), progress=False)
    with pytest.raises(ConfigError, match=r"veto_jet_r=0.3; expected .* and veto_jet_r >= jet_r"):
        generate_qg(2, tmp_path / "x.h5", settings=QGSettings(veto_jet_r=0.3), progress=False)
    assert not list(tmp_path.iterdir())


def test_cli_without_pythia_says_how_to_install(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pythia8mc" else real(name, *a))
    code = main(["simulate", "qg", "--events", "2", "--out", str(tmp_path / "x.h5")])
    assert code == 2
    err = capsys.readouterr().err
    assert "pythia8mc" in err and "pip install 'graphevent[sim]'" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
