"""Checkpoints: atomic save, ``weights_only`` load, RNG states, reloading runs and encoders.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) so it loads with
``torch.load(..., weights_only=True)``:

==================  =============================================================
key                 content
==================  =============================================================
model               ``state_dict`` of the bare model (no DDP prefix)
optimizer           AdamW ``state_dict``
scheduler           LambdaLR ``state_dict``
scaler              GradScaler ``state_dict``
rng                 ``{"world_size": W, "ranks": [per-rank RNG state]}``
epoch               completed epochs
step                optimizer steps taken
batch_in_epoch      batches of epoch ``epoch`` already trained (0 at epoch ends)
progress            running sums of the current epoch and early-stopping state
model_config        the experiment's ``model:`` mapping
dataset_info        :class:`DatasetInfo` as a mapping
tasks               task configs as mappings
config              the resolved experiment config
metrics             the last epoch's metrics line (or ``{}``)
==================  =============================================================
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graphevent.errors import ConfigError, RunError

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; missing or corrupt files raise RunError."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, or a pickle that is not plain data
        raise RunError(f"{path}: not a loadable graphevent checkpoint ({_load_error_reason(exc)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RunError(f"{path}: not a graphevent checkpoint (no 'model' entry)")
    return state


def _load_error_reason(exc: BaseException) -> str:
    """Why torch.load failed, in one line of our own words.

    torch's message for a pickle holding more than tensors and plain data suggests
    loading with ``weights_only=False``, which would run code from the file: never
    repeated here.
    """
    text = str(exc).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds Python objects other than tensors and plain data, which graphevent never writes; refused"
    first = text.splitlines()[0].strip() if text else ""
    return first or type(exc).__name__


# -- RNG --------------------------------------------------------------------------------
def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's RNG states (torch CPU, CUDA of ``device``, numpy, python) as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


# -- rebuilding models ------------------------------------------------------------------
def _info_from(state: dict[str, Any], where: str):
    from graphevent.data.info import DatasetInfo

    try:
        return DatasetInfo(**state["dataset_info"])
    except (KeyError, TypeError) as exc:
        raise RunError(f"{where}: checkpoint has no usable dataset_info ({exc})") from None


def model_from_checkpoint(state: dict[str, Any], where: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was trained with and load its weights (train mode)."""
    from graphevent.config.base import from_dict
    from graphevent.nn.registry import build_model
    from graphevent.nn.tasks import TaskConfig

    info = _info_from(state, where)
    tasks = [from_dict(TaskConfig, t, f"{where}:tasks[{i}]") for i, t in enumerate(state.get("tasks") or [])]
    model = build_model(dict(state["model_config"]), info, tasks or None)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise RunError(
            f"{where}: weights do not fit model {state['model_config'].get('name')!r} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def checkpoint_path(run_or_file: str | Path, which: str = "best") -> Path:
    """``RUN_DIR/checkpoints/<which>.pt`` for a run directory, or the file itself."""
    p = Path(run_or_file)
    if p.is_dir():
        if which not in ("best", "last"):
            raise RunError(f"checkpoint {which!r}: expected 'best' or 'last'")
        p = p / "checkpoints" / f"{which}.pt"
        if not p.is_file():
            raise RunError(f"{run_or_file}: no checkpoints/{which}.pt (not a finished graphevent run?)")
    elif not p.exists():
        raise RunError(f"{p}: run directory or checkpoint not found")
    return p


def load_run(run_dir: str | Path, which: str = "best", map_location: str | torch.device = "cpu"):
    """Load a trained run for evaluation.

    Args:
        run_dir: a run directory (or a checkpoint file).
        which: ``best`` or ``last``.
        map_location: where tensors are loaded.

    Returns:
        ``(model in eval mode, ExperimentConfig, DatasetInfo)``.
    """
    from graphevent.config.base import from_dict
    from graphevent.config.experiment import ExperimentConfig

    path = checkpoint_path(run_dir, which)
    state = load_checkpoint(path, map_location)
    if "config" not in state:
        raise RunError(f"{path}: checkpoint has no experiment config")
    cfg = from_dict(ExperimentConfig, state["config"], f"{path}:config")
    model = model_from_checkpoint(state, str(path))
    model.to(map_location).eval()
    return model, cfg, _info_from(state, str(path))


def transfer_encoders(model: nn.Module, source: str | Path) -> list[str]:
    """Copy the encoder weights of a (pretraining) run into ``model``, exactly, by encoder name.

    Args:
        model: a GraphModel with ``encoder_modules()``.
        source: a run directory (its ``best.pt``, else ``last.pt``) or a checkpoint file.

    Returns:
        the encoder names copied (e.g. ``["masked_gt"]``).

    Raises:
        RunError: the source is missing or unreadable.
        ConfigError: no encoder in common, or an encoder's shapes differ.
    """
    src = Path(source)
    if src.is_dir():
        best = src / "checkpoints" / "best.pt"
        path = best if best.is_file() else checkpoint_path(src, "last")
    else:
        path = checkpoint_path(src)
    state = load_checkpoint(path)
    src_model = model_from_checkpoint(state, str(path))
    src_enc, dst_enc = src_model.encoder_modules(), model.encoder_modules()
    common = [name for name in dst_enc if name in src_enc]
    if not common:
        raise ConfigError(
            f"--init-from {source}: it has encoders {sorted(src_enc)}, the model needs {sorted(dst_enc)}; none in common"
        )
    for name in common:
        try:
            dst_enc[name].load_state_dict(src_enc[name].state_dict(), strict=True)
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()[-1].strip()
            raise ConfigError(
                f"--init-from {source}: encoder {name!r} has a different architecture ({detail}); "
                "use the same encoder settings as the pretraining run"
            ) from None
    return common


def asdict_plain(obj: Any) -> Any:
    """A dataclass (or nested structure of them) as plain dicts/lists for a checkpoint."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: asdict_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [asdict_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: asdict_plain(v) for k, v in obj.items()}
    return obj
