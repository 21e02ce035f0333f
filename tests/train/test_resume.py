"""A run SIGKILLed mid-epoch and resumed ends with the weights of an uninterrupted run.

The killed process is the real ``graphevent train`` command; ``killhook/sitecustomize.py``
(on PYTHONPATH) makes it SIGKILL itself right after optimizer step 11, i.e. one step after
the mid-epoch checkpoint of step 10 and before anything of step 11 could be saved.
Pretraining the masked graph transformer draws random masks every step, so this also
checks that RNG states and the data position within the epoch are restored.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch

from train_helpers import run_graphevent, write_experiment
from graphevent.nn.checkpoint import load_checkpoint


def test_sigkill_then_resume_matches_uninterrupted_run(pretrain_run, tiny_dataset, tmp_path):
    # same settings as the pretrain_run fixture (the uninterrupted reference) + step checkpoints
    cfg = write_experiment(tmp_path / "pre.yaml", "pretrain", "masked_gt_ae", checkpoint_every_steps=2)
    out = tmp_path / "run"
    killed = run_graphevent(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress"],
                            GRAPHEVENT_TEST_KILL_AT_STEP="11")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (1, 10, 3)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    resumed = run_graphevent(["train", "-d", tiny_dataset, "-o", out, "--resume", "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    ref = load_checkpoint(pretrain_run / "checkpoints" / "last.pt")
    got = load_checkpoint(out / "checkpoints" / "last.pt")
    assert got["step"] == ref["step"] == 14
    diff = max(float((ref["model"][k] - got["model"][k]).abs().max()) for k in ref["model"])
    print(f"max |weight difference| resumed vs uninterrupted: {diff:.3g}")
    assert diff <= 1e-6
    for group_ref, group_got in zip(ref["optimizer"]["state"].values(), got["optimizer"]["state"].values()):
        assert torch.allclose(group_ref["exp_avg"], group_got["exp_avg"], atol=1e-6)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ref_records = [json.loads(line) for line in (pretrain_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r, q in zip(records, ref_records):
        assert r["train_loss"] == pytest.approx(q["train_loss"], abs=1e-6)
        assert r["val_loss"] == pytest.approx(q["val_loss"], abs=1e-6)
