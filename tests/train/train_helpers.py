"""Fixtures for training tests: tiny model configs, experiment files, CLI runners."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Tiny versions of the registered models (k matches the tiny dataset's k=8, so no kNN is recomputed).
GT = {"dim": 16, "depth": 1, "heads": 2, "edge_dim": 8, "k": 8, "decoder_dim": 8, "pos_freqs": 2}
MODELS = {
    "masked_gt_ae": {"name": "masked_gt_ae", **GT},
    "multitask": {"name": "multitask", "encoder": "masked_gt", "dim": 16, "heads": 2, "head_hidden": 16, "masked_gt": GT},
    "particlenet": {"name": "particlenet", "k": 8, "channels": [[8, 8], [16, 16]], "fc_dim": 16, "dropout": 0.1},
}
LABEL = [{"name": "label", "type": "classification"}]


def write_experiment(path: Path, stage: str, model: str | dict, tasks=None, **train) -> Path:
    """Write an experiment YAML with a tiny model and small training settings."""
    cfg = {
        "stage": stage,
        "model": MODELS[model] if isinstance(model, str) else model,
        "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "warmup_epochs": 0.5, **train},
        "seed": 1,
    }
    if tasks is not None:
        cfg["tasks"] = tasks
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for ``graphevent`` subprocesses: one thread, the kill hook importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHEVENT_TEST_", "TORCHELASTIC_", "SLURM_"))}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "killhook"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_graphevent(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    """Run the real ``graphevent`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "graphevent.cli.app", *map(str, args)],
        env=cli_env(**env), capture_output=True, text=True, timeout=timeout,
    )


def main_cli(args: list[str]) -> int:
    """Run ``graphevent`` in this process (exit code as the console script would return)."""
    from graphevent.cli.app import main

    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def pretrain_run(tiny_dataset, tmp_path_factory):
    """A finished masked-GT pretraining run (2 epochs) on the tiny dataset."""
    tmp = tmp_path_factory.mktemp("pretrain")
    cfg = write_experiment(tmp / "pre.yaml", "pretrain", "masked_gt_ae")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", tmp / "run", "--no-progress"])
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    return tmp / "run"


def files(root: Path) -> dict[str, str]:
    """sha256 of every file (lock files by name only: each command that takes one writes its pid there)."""
    return {p.relative_to(root).as_posix(): "lock" if p.name == ".graphevent.lock" else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_line(capsys, args) -> str:
    """Run the CLI: exit 2, no traceback, one ``error:`` line (returned without its prefix)."""
    code = main_cli(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err
    return errors[0].removeprefix("error: ")
