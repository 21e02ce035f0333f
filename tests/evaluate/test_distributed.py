"""Two gloo processes under torchrun give the metrics and predictions of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from graphevent.evaluate import EvalOptions, evaluate
from graphevent.evaluate.predictions import read_predictions


def flatten(doc):
    out = {}
    for run, tasks in doc["runs"].items():
        for task, metrics in tasks.items():
            for name, value in metrics.items():
                out[(run, task, name)] = value
    return out


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, trained_runs, tiny_dataset):
    # batch size 1: the two processes see every event in a batch of its own, as one process
    # does (the model's outputs may depend on which events share a batch at the 1e-4 level)
    one = evaluate([trained_runs["mt"]], tiny_dataset, EvalOptions(bootstrap=20, device="cpu", batch_size=1, max_events=12), tmp_path / "one")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "graphevent.cli.app",
         "eval", str(trained_runs["mt"]), "--data", str(tiny_dataset), "--out", str(tmp_path / "two"), "--device", "cpu",
         "--bootstrap", "20", "--batch-size", "1", "--max-events", "12", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("graphevent eval: mt") == 1  # only rank 0 prints
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    a, b = flatten(one.document), flatten(two)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(b[key], float), rtol=1e-5, err_msg=str(key))
    pa = read_predictions(tmp_path / "one" / "predictions-mt.parquet")
    pb = read_predictions(tmp_path / "two" / "predictions-mt.parquet")
    assert pa.keys() == pb.keys()
    for k in pa:
        if pa[k].dtype.kind in "OU":  # source_file
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        else:
            np.testing.assert_allclose(pa[k], pb[k], rtol=1e-5, err_msg=k)
    assert not list(tmp_path.glob(".two.tmp-*"))
