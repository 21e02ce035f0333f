"""DDP on CPU: two gloo processes with batch B/2 each reach the weights of one process with batch B.

The toy model's loss is a mean over events and it has no dropout or batch norm, so the
average of the two ranks' gradients equals the single-process gradient. It trains in
float64 so that the comparison measures the algorithm, not float32 summation order
(in float32 the two runs differ by ~1e-7 per step, which Adam can amplify).
"""

from __future__ import annotations

import subprocess
import sys

import torch

from train_helpers import HERE, cli_env
from ddp_helper import train_toy
from graphevent.utils.distributed import DistContext


def test_two_gloo_workers_match_one_process(tmp_path):
    one = tmp_path / "one.pt"
    train_toy(str(one), batch_size=8, epochs=2, ctx=DistContext())
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(HERE / "ddp_helper.py"), str(tmp_path / "two.pt"), "4", "2"],
        env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = torch.load(one, weights_only=False)
    b = torch.load(tmp_path / "two.pt", weights_only=False)
    assert a["step"] == b["step"] == 6  # 24 events, 8 per step, 2 epochs
    diff = max(float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"])
    assert diff < 1e-5
    # control: one process with batch B/2 takes other steps and ends elsewhere
    half = tmp_path / "half.pt"
    train_toy(str(half), batch_size=4, epochs=2, ctx=DistContext())
    c = torch.load(half, weights_only=False)
    assert max(float((a["model"][k] - c["model"][k]).abs().max()) for k in a["model"]) > 1e-3
    for key in ("train_loss", "val_loss", "val_label_auc"):
        assert abs(a["summary"]["last"][key] - b["summary"]["last"][key]) < 1e-9, key
