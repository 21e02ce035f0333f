"""SIGINT / SIGTERM during training: checkpoint saved, where and how to resume said, exit 130 / 143."""

from __future__ import annotations

import json
import os
import signal

import pytest

from train_helpers import LABEL, main_cli, write_experiment
from graphevent.nn.checkpoint import load_checkpoint


def _signal_after_step(monkeypatch, step: int, signum: int) -> None:
    """The process sends itself ``signum`` right after optimizer step ``step`` (first run only)."""
    import graphevent.train.engine as engine

    original = engine.Trainer._optimizer_step
    sent = []

    def step_then_signal(self):
        original(self)
        if self.state.step == step and not sent:
            sent.append(step)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(engine.Trainer, "_optimizer_step", step_then_signal)


@pytest.fixture
def terminal_signals():
    """A terminal's SIGINT/SIGTERM handlers, whatever started pytest (a background job or CI may
    start it with SIGINT ignored, which training then leaves ignored); restored afterwards."""
    old = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
           signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL)}
    yield
    for sig, handler in old.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("signum, step, position", [
    (signal.SIGTERM, 3, "epoch 1, batch 3, step 3"),    # within an epoch (55 events, batch 8: 7 steps per epoch)
    (signal.SIGINT, 7, "end of epoch 1, step 7"),       # on an epoch's last step: that epoch's checkpoint
])
def test_signal_saves_a_checkpoint_and_resume_finishes(signum, step, position, tiny_dataset, tmp_path, capsys, monkeypatch,
                                                       one_torch_thread, terminal_signals):
    cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL, epochs=2, num_workers=0)
    out = tmp_path / "run"
    _signal_after_step(monkeypatch, step, signum)
    code = main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: checkpoint saved to {out / 'checkpoints' / 'last.pt'} ({position}); " \
           f"resume with: graphevent train --out {out} --resume" in " ".join(err.split())
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["step"] == step and last["batch_in_epoch"] == (step % 7)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.undo()
    assert main_cli(["train", "-o", out, "--resume", "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["step"] == 14


def test_a_signal_started_ignored_stays_ignored(tiny_dataset, tmp_path, one_torch_thread):
    """nohup / a background job starts training with SIGINT ignored: it must stay ignored."""
    import graphevent.train.engine as engine

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with engine._StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.signum == 0 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_sigterm_to_the_launcher_of_two_workers_saves_and_resumes(tiny_dataset, tmp_path):
    """A batch system's pre-emption: SIGTERM to the process that launched two workers (rank 0
    sends it to its parent after step 2 and waits until the launcher has forwarded it). The
    workers stop together, save, and the command exits 143 with the one-line message;
    --resume finishes the run."""
    from train_helpers import run_graphevent

    cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL, epochs=2, num_workers=0)
    out = tmp_path / "run"
    proc = run_graphevent(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--nproc", "2", "--no-progress"],
                          timeout=400, GRAPHEVENT_TEST_TERM_LAUNCHER_AT_STEP="2")
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"interrupted by SIGTERM: checkpoint saved to {out / 'checkpoints' / 'last.pt'} (" in proc.stderr
    assert f"resume with: graphevent train --out {out} --resume" in proc.stderr
    saved = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert saved == 2  # rank 0 waits for the forwarded signal after step 2: the workers stop there
    proc = run_graphevent(["train", "-o", out, "--resume", "--nproc", "2", "--no-progress"], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["step"] > saved
