"""Checkpoints: atomic, checksummed save, verified ``weights_only`` load, RNG states, reloading
runs and encoders.

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

Checksums. Every checkpoint ``NAME.pt`` is written with a record ``NAME.pt.sha256`` next to
it (in ``sha256sum`` format: ``<64 hex digits>  NAME.pt``), and every load checks the file
against it first: predict, export, eval, probe, ``train --resume`` (``last.pt`` and
``best.pt``, before anything in the run changes) and ``train --init-from``. A changed byte is
one line naming the file (:class:`RunError`), never a silently different model; torch.load
itself does not check the zip CRCs. The record is a sidecar file, not an entry of a shared
JSON, so ``best.pt`` and ``last.pt`` are written independently, a checkpoint copied with its
record stays checkable, and it lives inside ``checkpoints/``, which the run directory's
graphevent marker already lists (``--overwrite`` removes it with the checkpoints).

A save is ordered so that a crash at any point leaves a checkpoint that loads:

1. the new checkpoint is written to a temporary file and synced, then hashed;
2. if a checkpoint is being replaced, the record is replaced (temporary file, rename) by
   one listing the new digest and the digests of the checkpoint still in place;
3. the new checkpoint is renamed over the old one;
4. the record is replaced by one listing only the new digest.

A crash after 2 or 3 leaves a two-line record that accepts whichever of the two files is
there; a crash during the first save of a file leaves a checkpoint without a record, which
loads like one from an earlier version. A reader that overlaps a save (``eval`` while the
run still trains) reads the record before and after the checkpoint, and accepts the
checkpoint if either lists it.

Checkpoints written before checksums existed have no record; they still load, after their
zip entries' CRC32s are checked (torch checkpoints are zip archives; :mod:`zipfile` checks
them at about the speed of reading the file), which catches flipped bits in the data.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from graphevent.errors import ConfigError, RunError
from graphevent.io.manifest import sha256_file

CHECKPOINT_FORMAT = 1


#: The suffix of a checkpoint's checksum record: ``best.pt`` -> ``best.pt.sha256``.
RECORD_SUFFIX = ".sha256"
_RECORD_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")


def record_path(path: str | Path) -> Path:
    """Where the checksum record of checkpoint ``path`` lives (``NAME.pt.sha256`` beside it)."""
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically, with its checksum record (module docstring).

    The temporary files live in the same folder; a crash at any point leaves a checkpoint
    that loads (the new one or the one it replaces).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    buffer = io.BytesIO()  # torch's zip writer can abort the process when a file write fails (full disk)
    torch.save(state, buffer)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    del buffer
    digest = sha256_file(tmp)
    record = record_path(path)
    if path.exists():  # until the rename, the record also accepts the file still in place
        in_place = _read_record(record, path, strict=False) or [sha256_file(path)]
        _write_record(record, path.name, [digest, *(d for d in in_place if d != digest)])
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    _write_record(record, path.name, [digest])


def verify_checkpoint(path: str | Path) -> bytes:
    """The bytes of checkpoint ``path``, checked against its record (or its zip CRCs without one).

    Raises:
        RunError: the file is missing, differs from its record, the record is not one, or
            (no record) the file is not a zip archive or an entry fails its CRC32.
    """
    path = Path(path)
    record = record_path(path)
    for _ in range(3):  # a save that overlaps this read changes the record: read again
        before = _read_record(record, path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _refuse_recorded_but_missing(path)
            raise RunError(f"{path}: checkpoint not found") from None
        except OSError as exc:
            raise RunError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
        after = _read_record(record, path)
        if before is None and after is None:
            _check_zip_crcs(path, data)
            return data
        if hashlib.sha256(data).hexdigest() in (before or []) + (after or []):
            return data
        if before == after:
            break
    raise RunError(f"{path}: checksum does not match the one recorded when it was written ({record}); "
                   "the file was changed or damaged")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` after :func:`verify_checkpoint`; missing,
    changed or corrupt files raise RunError."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise RunError(f"{path}: not a checkpoint file")
    data = verify_checkpoint(path)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, or a pickle that is not plain data
        raise RunError(f"{path}: not a loadable graphevent checkpoint ({_load_error_reason(exc)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RunError(f"{path}: not a graphevent checkpoint (no 'model' entry)")
    return state


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_record(record: Path, name: str, digests: list[str]) -> None:
    """Replace ``record`` atomically by one line ``<digest>  <name>`` per digest."""
    tmp = record.with_name(f".{record.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write("".join(f"{d}  {name}\n" for d in digests))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, record)
    _fsync_dir(record.parent)


def _read_record(record: Path, path: Path, strict: bool = True) -> list[str] | None:
    """The digests ``record`` lists (``None`` if there is none); a record that is not one
    raises RunError (``strict``) or reads as ``None``."""
    try:
        text = record.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        if not strict:
            return None
        raise RunError(f"{record}: cannot read the checksum record of {path.name} ({exc})") from None
    lines = text.splitlines()
    matches = [_RECORD_LINE.fullmatch(line) for line in lines]
    if not lines or not all(matches):
        if not strict:
            return None
        raise RunError(f"{record}: not a checksum record of {path.name} (expected lines '<64 hex digits>  "
                       f"{path.name}'); the record was changed or damaged")
    return [m.group(1) for m in matches]


def _check_zip_crcs(path: Path, data: bytes) -> None:
    """Check every zip entry's CRC32 (a checkpoint without a checksum record)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise RunError(f"{path}: not a loadable graphevent checkpoint (not a readable zip archive, as torch "
                       f"checkpoints are: {exc})") from None
    if bad is not None:
        raise RunError(f"{path}: zip entry {bad!r} fails its CRC32 check (no checksum record {record_path(path).name} "
                       "to compare with: written before graphevent recorded them); the file was changed or damaged")


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
            _refuse_recorded_but_missing(p)
            raise RunError(f"{run_or_file}: no checkpoints/{which}.pt (not a finished graphevent run?)")
    elif not p.exists():
        _refuse_recorded_but_missing(p)
        raise RunError(f"{p}: run directory or checkpoint not found")
    return p


def _refuse_recorded_but_missing(path: Path) -> None:
    """A checkpoint whose checksum record is there was written, then removed: say so."""
    if record_path(path).is_file():
        raise RunError(f"{path}: checkpoint not found, but {record_path(path)} records that it was written; "
                       "the file was removed or renamed")


class LoadedRun(NamedTuple):
    """A trained run reloaded by :func:`open_run`."""

    model: nn.Module
    config: Any  # ExperimentConfig
    info: Any  # DatasetInfo
    path: Path  # the checkpoint file read
    epoch: int | None  # its completed epochs


def open_run(run_dir: str | Path, which: str = "best", map_location: str | torch.device = "cpu") -> LoadedRun:
    """Load a trained run for evaluation (the checkpoint read once, verified).

    Args:
        run_dir: a run directory (or a checkpoint file).
        which: ``best`` or ``last``.
        map_location: where tensors are loaded.

    Returns:
        the model in eval mode, its ExperimentConfig and DatasetInfo, the checkpoint file and epoch.
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
    epoch = state.get("epoch")
    return LoadedRun(model, cfg, _info_from(state, str(path)), path, int(epoch) if isinstance(epoch, int) else None)


def load_run(run_dir: str | Path, which: str = "best", map_location: str | torch.device = "cpu"):
    """Load a trained run for evaluation: :func:`open_run`'s ``(model in eval mode,
    ExperimentConfig, DatasetInfo)``."""
    run = open_run(run_dir, which, map_location)
    return run.model, run.config, run.info


def encoder_source(source: str | Path) -> Path:
    """The checkpoint ``--init-from SOURCE`` reads: a run directory's ``best.pt``, else its
    ``last.pt``; or the file itself."""
    src = Path(source)
    if src.is_dir():
        best = src / "checkpoints" / "best.pt"
        if best.is_file():
            return best
        _refuse_recorded_but_missing(best)  # never fall back to last.pt for a removed best.pt
        return checkpoint_path(src, "last")
    return checkpoint_path(src)


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
    path = encoder_source(source)
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
    """A dataclass (or nested structure of them) as plain dicts/lists for a checkpoint:
    :func:`graphevent.config.base.to_dict`, keeping tuples."""
    from graphevent.config.base import to_dict

    return to_dict(obj, keep_tuples=True)
