"""``graphevent train --nproc 2``: the elastic launcher starts two gloo workers, restarts them
when one is SIGKILLed, and the restarted group resumes from the last checkpoint."""

from __future__ import annotations

import json

from train_helpers import LABEL, run_graphevent, write_experiment
from graphevent.nn.checkpoint import load_checkpoint


def test_two_cpu_workers_restart_after_a_killed_worker(tiny_dataset, tmp_path):
    cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL,
                           checkpoint_every_steps=2, max_restarts=1)
    out = tmp_path / "run"
    # rank 1 dies right after step 3 on the first attempt; the checkpoint of step 2 survives
    proc = run_graphevent(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--nproc", "2"], timeout=400,
                          GRAPHEVENT_TEST_KILL_AT_STEP="3", GRAPHEVENT_TEST_KILL_RANK="1")
    assert proc.returncode == 0, proc.stderr[-3000:]

    env = json.loads((out / "env.json").read_text())
    assert (env["world_size"], env["backend"], env["launcher"]) == (2, "gloo", "elastic")
    assert env["restart_count"] == 1 and env["resumed"] is True
    assert len(env["devices"]) == 2

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    # 55 events, 2 workers x 8: 3 full steps + a tail step per epoch; every event once per epoch
    assert [r["step"] for r in records] == [4, 8]
    assert all(r["train_events"] == 55 for r in records[1:])
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"], last["rng"]["world_size"]) == (2, 8, 2)

    # rank 0 alone talks to the terminal; rank 1 writes to its log file
    assert proc.stdout.count("epoch 1 |") == 1 and proc.stdout.count("epoch 2 |") == 1
    assert (out / "logs" / "rank1.log").is_file()
