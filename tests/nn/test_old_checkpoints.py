"""Checkpoints written by earlier versions still load: fixtures made by main at 79a1b65
(tests/nn/fixtures/make_main_checkpoints.py says how)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from nn_helpers import make_batch, tiny_info
from graphevent.nn import build_model
from graphevent.nn.checkpoint import model_from_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEYS = json.loads(gzip.decompress((FIXTURES / "state_dict_keys_79a1b65.json.gz").read_bytes()))
CHECKPOINTS = torch.load(FIXTURES / "checkpoints_79a1b65.pt", weights_only=True)


@pytest.mark.parametrize("variant", sorted(KEYS))
def test_every_model_has_the_state_dict_keys_and_shapes_of_79a1b65(variant):
    old = KEYS[variant]
    model = build_model(old["model"], tiny_info())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == old["state"]


@pytest.mark.parametrize("variant", sorted(CHECKPOINTS))
def test_checkpoints_of_79a1b65_load_and_predict_the_same(variant):
    state = CHECKPOINTS[variant]
    model = model_from_checkpoint(state, variant).eval()
    with torch.no_grad():
        pred = model.predict(make_batch())
    assert pred.keys() == state["predict"].keys()
    for key, value in state["predict"].items():
        torch.testing.assert_close(pred[key], value)
