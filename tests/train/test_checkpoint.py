"""Checkpoint files: atomic writes, weights_only loading, RNG states, clear errors."""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from graphevent.errors import RunError
from graphevent.train.checkpoint import checkpoint_path, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_save_is_atomic_and_loads_weights_only(tmp_path):
    state = {"model": OrderedDict(w=torch.arange(4.0)), "epoch": 2, "rng": rng_state(), "tasks": [{"name": "label"}]}
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(state, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary file left
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0)) and loaded["epoch"] == 2


def test_rng_state_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


class NotPlainData:
    """An arbitrary class: pickling it makes a checkpoint that weights_only loading must refuse."""


def test_refuses_pickled_objects_and_corrupt_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": NotPlainData()}, evil)
    with pytest.raises(RunError, match="evil.pt: not a loadable graphevent checkpoint"):
        load_checkpoint(evil)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match="broken.pt: not a loadable graphevent checkpoint"):
        load_checkpoint(broken)
    with pytest.raises(RunError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_path_of_run_dirs(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path / "run", "last").name == "last.pt"
    with pytest.raises(RunError, match="no checkpoints/best.pt"):
        checkpoint_path(tmp_path / "run", "best")
