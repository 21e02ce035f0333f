"""The run directory: what a training run writes, and how it is created, refused or resumed.

::

    RUN_DIR/
      config.yaml          resolved ExperimentConfig (after --set and option overrides)
      dataset.json         DatasetInfo + dataset path and manifest sha256
      env.json             versions, devices, world size, launcher (earlier runs under "previous")
      launch.json          what the workers were started with (data, device kind, resume)
      metrics.jsonl        one JSON object per epoch
      checkpoints/last.pt  latest state (every epoch, and every N steps if configured)
      checkpoints/best.pt  state at the best validation metric
      checkpoints/*.sha256 each checkpoint's checksum, checked when it loads
      tensorboard/         event files (when tensorboard is installed)
      logs/                per-rank logs of ranks > 0, elastic launcher files
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import torch

from graphevent.errors import RunError
from graphevent.nn.checkpoint import record_path, verify_checkpoint
from graphevent.utils.outdir import OutputDir

#: What a run directory holds (recorded in its graphevent marker before anything is written).
RUN_ENTRIES = ("config.yaml", "dataset.json", "env.json", "launch.json", "metrics.jsonl", "checkpoints", "tensorboard", "logs")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def prepare_run_dir(od: OutputDir, resume: bool, overwrite: bool) -> None:
    """Mark the locked run directory for a new run, or check it for ``--resume``.

    A directory with content is refused unless ``resume`` (it must then hold a run with
    ``checkpoints/last.pt``, which the launcher has loaded, and so checked, already; ``best.pt``,
    which the run keeps as its best, must match its checksum record too) or ``overwrite`` (only what graphevent wrote there is removed:
    :meth:`OutputDir.clear` refuses anything else).
    """
    run_dir = od.path
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise RunError(f"--resume {run_dir}: no checkpoints/last.pt to resume from")
        best = run_dir / "checkpoints" / "best.pt"
        if best.is_file() or record_path(best).is_file():
            verify_checkpoint(best)
        od.start(RUN_ENTRIES)
        return
    if od.has_content():
        if not overwrite:
            raise RunError(f"--out {run_dir}: directory exists and is not empty; use --resume to continue it or --overwrite to replace it")
        od.clear()
    od.start(RUN_ENTRIES)


def environment(world_size: int, backend: str | None, launcher: str, devices: list[str]) -> dict[str, Any]:
    """Versions, machine and device description for ``env.json``."""
    import numpy
    import torch_geometric

    from graphevent import __version__

    cuda = torch.version.cuda if torch.cuda.is_available() else None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "graphevent": __version__,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "numpy": numpy.__version__,
        "cuda": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "world_size": world_size,
        "backend": backend,
        "launcher": launcher,
        "devices": devices,
    }


def cpu_name() -> str:
    """CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return f"cpu ({cpu_name()})"


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    """Write ``env.json``; a resumed run keeps the earlier environments under ``previous``."""
    path = Path(run_dir) / "env.json"
    previous: list[Any] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            previous = old.pop("previous", []) + [old]
        except json.JSONDecodeError:
            previous = []
    write_json_atomic(path, {**env, "previous": previous})


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch records of ``metrics.jsonl`` (an incomplete last line is ignored)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


class MetricsLogger:
    """Rank-0 writer of ``metrics.jsonl`` and TensorBoard scalars.

    Args:
        run_dir: the run directory.
        completed_epochs: on resume, records of later epochs (written before a crash, not
            covered by the checkpoint) are dropped so every epoch appears once.
        tensorboard: write ``tensorboard/`` event files when the package is installed.
    """

    def __init__(self, run_dir: Path, completed_epochs: int = 0, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        kept = [r for r in read_metrics(run_dir) if int(r.get("epoch", 0)) <= completed_epochs]
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log_epoch(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(f"epoch/{k}", v, record["epoch"])
            self.tb.flush()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
