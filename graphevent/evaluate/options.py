"""Options of ``graphevent eval`` as one frozen dataclass (validated once, passed around)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graphevent.errors import ConfigError, DataError, RunError

#: events per model call of every inference (``eval``, ``predict``, probes, ``--explain``):
#: the one default of :func:`graphevent.evaluate.inference.infer` and of every option that
#: feeds it. Here, not in :mod:`~graphevent.evaluate.inference`, so the CLI reads it
#: without importing torch.
DEFAULT_BATCH_SIZE = 128


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate runs.

    Args:
        split: dataset split to evaluate (``train``, ``val``, ``test``; default ``test``).
        checkpoint: ``best`` (lowest validation objective) or ``last``.
        bootstrap: bootstrap resamples for the 95 % intervals (0 = no intervals).
        confidence: interval coverage (default 0.95).
        seed: seed of the bootstrap and of any random masking during evaluation.
        signal: binary tasks: signal class, by name or index (default: class index 1).
        explain: also write model-understanding figures (attention, saliency, PCA).
        explain_events: events per class shown in the explain figures.
        format: predictions file format, ``parquet`` or ``root``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: events per inference batch.
        num_workers: DataLoader worker processes.
        max_events: evaluate only the first N events of the split (``None``: all).
        overwrite: replace an existing output directory.
    """

    split: str = "test"
    checkpoint: Literal["best", "last"] = "best"
    bootstrap: int = 200
    confidence: float = 0.95
    seed: int = 0
    signal: str | None = None
    explain: bool = False
    explain_events: int = 2
    format: Literal["parquet", "root"] = "parquet"
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int = 0
    max_events: int | None = None
    overwrite: bool = False

    def validate(self, where: str = "eval") -> None:
        if self.checkpoint not in ("best", "last"):
            raise ConfigError(f"--checkpoint {self.checkpoint!r}: expected 'best' or 'last'")
        if self.format not in ("parquet", "root"):
            raise ConfigError(f"--format {self.format!r}: expected 'parquet' or 'root'")
        if self.bootstrap < 0:
            raise ConfigError(f"--bootstrap {self.bootstrap}: expected 0 (no intervals) or a positive number of resamples")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence {self.confidence}: expected a number in (0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: expected a positive integer")
        if self.num_workers < 0:
            raise ConfigError(f"--workers {self.num_workers}: expected 0 or more")
        if self.explain_events < 1:
            raise ConfigError(f"--explain-events {self.explain_events}: expected a positive integer")
        if self.max_events is not None and self.max_events < 1:
            raise ConfigError(f"--max-events {self.max_events}: expected a positive integer")
        if not (self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ConfigError(f"--device {self.device!r}: expected auto, cpu, cuda or cuda:N")


def check_run_dirs(run_dirs, options: EvalOptions) -> None:
    """The checks of an eval's options and run directories that need no torch.

    Raises:
        ConfigError: bad options, or no run directory given.
        RunError: a run directory that does not exist.
    """
    options.validate()
    if not run_dirs:
        raise ConfigError("eval: no run directory given; expected one or more RUN_DIR")
    for d in run_dirs:
        if not Path(d).is_dir():
            raise RunError(f"{d}: run directory not found")


def recorded_dataset(run_dirs) -> Path:
    """The dataset the runs were trained on, as each records it (``RUN_DIR/dataset.json``
    ``path``): what ``graphevent eval`` reads when ``--data`` is not given.

    Raises:
        RunError: a run without a readable record, or runs trained on different datasets.
        DataError: the recorded dataset directory no longer exists.
    """
    paths: dict[str, str] = {}
    for d in run_dirs:
        record = Path(d) / "dataset.json"
        try:
            path = json.loads(record.read_text()).get("path")
        except (OSError, json.JSONDecodeError, AttributeError):
            path = None
        if not isinstance(path, str):
            raise RunError(f"{record}: no readable dataset record; pass --data")
        paths[str(d)] = path
    if len(set(paths.values())) > 1:
        shown = ", ".join(f"{d} on {p}" for d, p in paths.items())
        raise RunError(f"--data not given and the runs were trained on different datasets ({shown}); pass --data")
    path = Path(next(iter(paths.values())))
    if not path.is_dir():
        raise DataError(f"--data not given: {path}, the dataset recorded in {Path(run_dirs[0]) / 'dataset.json'}, "
                        "does not exist; pass --data")
    return path
