"""``graphevent train`` as a library call: check inputs, prepare the run directory, launch workers.

:func:`train` is what the CLI calls. It validates everything that can be checked before
any worker starts (config, dataset and its checksums, model and tasks, ``--init-from``,
devices), so bad input fails fast with one line; then it runs the worker in-process
(one process, or one of the processes started by torchrun/srun) or through the elastic
launcher (:func:`graphevent.utils.distributed.launch_elastic`).
"""

from __future__ import annotations

import json
import os
import signal
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from graphevent import errors
from graphevent.config.base import (
    build_with_overrides, dump_yaml, load_yaml, name_override, override_label, parse_override, replaced_overrides, to_dict,
)
from graphevent.config.experiment import ExperimentConfig, experiment_from_dict, load_experiment
from graphevent.config.tasks import validation_units
from graphevent.errors import ConfigError, GraphEventError, RunError

#: Settings that may change when a run is resumed (everything else must match config.yaml).
RESUMABLE_CHANGES = (
    "train.epochs", "train.early_stopping_patience", "train.num_workers", "train.max_restarts",
    "train.checkpoint_every_steps", "train.log_every_steps", "train.in_memory",
)


#: Settings a run takes from its first command's options; a resume keeps them unless given again.
RESUME_KEEPS = ("train.init_from", "train.label_fraction", "train.freeze_encoder")
#: worker error files looked for, by rank (rank0.error, rank1.error, ...); more than any world size here
MAX_RANKS_SCANNED = 1024


@dataclass(frozen=True)
class TrainOptions:
    """What ``graphevent train`` was asked to do.

    Args:
        data: dataset directory written by ``graphevent preprocess`` (``None`` with
            ``resume``: the run's recorded dataset).
        out: run directory.
        config: experiment YAML (optional with ``resume``: the run's config.yaml is used).
        overrides: ``--set`` style overrides (``train.lr=3e-4``), applied in order.
        option_labels: how the user typed an override the CLI made from an option
            (``{"train.batch_size=0": "--batch-size 0"}``): errors name that option.
        gpus: DDP workers, one per GPU (NCCL); 0 = CPU; ``None`` = every visible GPU.
        nproc: CPU workers (gloo) when ``gpus`` is 0.
        nnodes, node_rank, master_addr, master_port: multi-node rendezvous (static, like torchrun).
        resume: continue the run in ``out`` from ``checkpoints/last.pt``.
        overwrite: replace an existing run in ``out``.
        progress: show the rank-0 progress bar.
    """

    data: Path | None
    out: Path
    config: Path | None = None
    overrides: tuple[str, ...] = ()
    option_labels: dict[str, str] = field(default_factory=dict)
    gpus: int | None = None
    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports: its directory, layout, per-epoch metrics and the notes
    given to ``notify`` before training."""

    run_dir: Path
    world_size: int
    device: str
    epochs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: unit of a validation metric by key (``{"val_mass_mae": "GeV"}``)
    units: dict[str, str] = field(default_factory=dict)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "model":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _difference(key: str, a: Any, b: Any) -> tuple[str, Any, Any]:
    """The first place where the values ``a`` and ``b`` of ``key`` differ: inside a mapping (the
    ``model:`` section) the key below, ``model.dim``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            if a.get(k) != b.get(k):
                return _difference(f"{key}.{k}", a.get(k), b.get(k))
    return key, a, b


def resolve_config(options: TrainOptions) -> ExperimentConfig:
    """The experiment config of this run (for ``resume``: the stored one, checked against the request)."""
    overrides, labels = list(options.overrides), options.option_labels
    if not options.resume:
        if options.config is None:
            raise ConfigError("--config: required for a new run (give an experiment YAML from graphevent/configs/experiments/)")
        return load_experiment(options.config, overrides, labels)
    stored_path = Path(options.out) / "config.yaml"
    if not stored_path.is_file():
        raise RunError(f"--resume {options.out}: no config.yaml (not a graphevent run directory)")
    stored = experiment_from_dict(load_yaml(stored_path), str(stored_path))
    if options.config is not None:
        requested = load_experiment(options.config, overrides, labels)
        # settings the first command gave by option (--init-from, --label-fraction, ...) are
        # the run's own: kept unless given again
        given = {".".join(parse_override(o)[0]) for o in overrides}
        kept = to_dict(requested)
        for key in RESUME_KEEPS:
            if key not in given:
                section, name = key.split(".")
                kept[section][name] = to_dict(stored)[section][name]
        requested = experiment_from_dict(kept, f"{options.config} + {stored_path}")
    else:
        where = f"{stored_path} + --set"
        requested = build_with_overrides(lambda raw: experiment_from_dict(raw, where), to_dict(stored), overrides, where, labels)
    a, b = _flatten(to_dict(stored)), _flatten(to_dict(requested))
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES and k != "name")
    if changed:
        key, was, now = _difference(changed[0], a.get(changed[0]), b.get(changed[0]))
        setters = [o for o in overrides if _sets(o, key)]
        by = override_label(setters[-1], labels) if setters else "--resume"
        raise ConfigError(
            f"{by}: {key} is {now!r} but the run was started with {was!r}; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change when resuming"
        )
    return requested


def _sets(override: str, key: str) -> bool:
    """Whether ``override`` sets the config ``key`` (``model.k=8`` sets ``model.k``), or a section
    holding it (``model={...}``)."""
    dotted = ".".join(parse_override(override)[0])
    return dotted == key or key.startswith(dotted + ".") or dotted.startswith(key + ".")


def check_replaced_model_overrides(options: TrainOptions) -> None:
    """Check a ``--set model.*`` value that a later ``--set`` replaces against the model's own
    config class too (the experiment config holds model settings untyped; the model that is
    built checks only the values that win).

    Raises:
        ConfigError: naming the override, e.g. ``--set model.k=abc: expected an integer, found 'abc'``.
    """
    from graphevent.nn.registry import list_models

    for item, trial in replaced_overrides(options.overrides):
        if parse_override(item)[0][0] != "model":
            continue
        try:
            model = resolve_config(replace(options, overrides=tuple(trial))).model
        except ConfigError:  # an error about another key: that combination never runs
            continue
        cls = list_models().get(model.get("name"))
        if cls is None:
            continue
        try:
            cls.config_from_dict({k: v for k, v in model.items() if k != "name"}, "model")
        except ConfigError as exc:
            named = name_override(exc, "", [item], options.option_labels)
            if named is not exc:
                raise named from None


def check_resume_record(run_dir: Path, state: dict[str, Any], cfg: ExperimentConfig, world: int) -> list[str]:
    """Refuse to resume a run whose ``config.yaml`` no longer says what its checkpoint was trained
    with (an edited file would be rewritten into the record while the checkpoint's optimizer,
    model and schedule keep the old values); settings of :data:`RESUMABLE_CHANGES` may differ:
    the resumed run uses, and records, the new ones.

    Args:
        state: the loaded ``checkpoints/last.pt``.
        cfg: the resolved config of the resumed run; ``world``: its number of processes.

    Returns:
        notes for the user: one line when the number of processes differs from the one the
        checkpoint was written with (world size and effective batch size before and after).

    Raises:
        ConfigError: naming the first key whose value differs, and both values.
    """
    path = Path(run_dir) / "config.yaml"
    stored = _flatten(to_dict(experiment_from_dict(load_yaml(path), str(path))))
    trained = state.get("config")
    trained = _flatten(trained) if isinstance(trained, dict) else {}  # a checkpoint without its config: nothing to compare
    for key, value in stored.items():
        if key in trained and trained[key] != value and key not in RESUMABLE_CHANGES and key != "name":
            key, was, now = _difference(key, trained[key], value)
            raise ConfigError(
                f"{path}: {key} is {now!r} but the run was trained with {was!r}; "
                "a resumed run keeps its config: restore the file or start a new run"
            )
    before = int(state.get("rng", {}).get("world_size", world))
    if before == world:
        return []
    tc = cfg.train
    per_worker, unit = (tc.max_nodes_per_batch, "nodes at most") if tc.max_nodes_per_batch > 0 else (tc.batch_size, "events")
    return [
        f"resuming with world size {world} (the checkpoint was written with {before}): effective batch size "
        f"{world * per_worker * tc.accumulate} {unit} per optimizer step (was {before * per_worker * tc.accumulate})"
    ]


def check_inputs(cfg: ExperimentConfig, data: Path, verify: bool = True, resume: bool = False):
    """Open the dataset (checksums), build the model and tasks once, load ``init_from``
    into it and draw the ``label_fraction`` subset, as the workers will.

    Returns:
        ``(the dataset's DatasetInfo, notes)``: one line per ``init_from`` source (the
        encoders and tensors it loads) and one for ``label_fraction`` (the labelled events left).
    """
    from graphevent.nn.checkpoint import checkpoint_path
    from graphevent.train.worker import labelled_subset, load_init_from, open_inputs

    data = Path(data)
    if not data.exists():
        raise errors.DataError(f"--data {data}: dataset directory not found")
    train_set, val_set, model = open_inputs(cfg, data, verify=verify)
    if len(train_set) == 0:
        raise errors.DataError(f"--data {data}: the train split is empty")
    if len(val_set) == 0 and cfg.train.early_stopping_patience > 0:
        raise ConfigError(
            f"train.early_stopping_patience: {cfg.train.early_stopping_patience} needs a validation split; "
            f"{data} has no val events (set it to 0)"
        )
    info = train_set.info
    if cfg.train.freeze_encoder and not model.encoder_modules():
        raise ConfigError(f"train.freeze_encoder: model {cfg.model['name']!r} has no encoder to freeze")
    if cfg.train.init_from and not resume:  # a resumed run takes every weight from last.pt
        for source in cfg.train.init_from:
            checkpoint_path(source, "last" if Path(source).is_dir() else "best")
        if cfg.stage == "pretrain":
            raise ConfigError("train.init_from: loads a pretrained encoder for stage finetune/supervised, not pretrain")
    notes = []
    if cfg.train.init_from and not resume:
        frozen = ", frozen" if cfg.train.freeze_encoder else ""
        for source, names, tensors in load_init_from(model, cfg.train.init_from):
            notes.append(f"--init-from {source}: loaded encoder{'s' if len(names) > 1 else ''} {', '.join(names)} "
                         f"({tensors} tensors{frozen})")
    subset = labelled_subset(cfg, train_set)
    if subset is not None:
        seed = cfg.seed if cfg.train.label_seed is None else cfg.train.label_seed
        notes.append(f"--label-fraction {cfg.train.label_fraction:g}: the heads train on {len(subset)} of "
                     f"{len(train_set)} labelled train events (seed {seed})")
    return info, notes


def _device_plan(options: TrainOptions) -> tuple[bool, int]:
    """(use CUDA, workers per node) for a self-launched run."""
    import torch

    from graphevent.utils.distributed import check_gpus

    if options.nproc < 1:
        raise ConfigError(f"--nproc {options.nproc}: expected an integer >= 1")
    gpus = options.gpus
    if gpus is not None and gpus < 0:
        raise ConfigError(f"--gpus {gpus}: expected an integer >= 0")
    if gpus is None:
        gpus = 0 if options.nproc > 1 else (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if gpus > 0 and options.nproc > 1:
        raise ConfigError(f"--gpus {gpus} and --nproc {options.nproc}: choose one (--nproc is for CPU workers)")
    if gpus > 0:
        check_gpus(gpus)
        return True, gpus
    return False, options.nproc


def _raise_interrupted(run_dir: Path) -> None:
    """Raise :class:`~graphevent.errors.Interrupted` if rank 0 recorded that a signal stopped
    the workers after saving a checkpoint."""
    from graphevent.train.worker import interrupted_file

    path = interrupted_file(run_dir)
    if path.is_file():
        info = json.loads(path.read_text())
        raise errors.Interrupted(int(info["signum"]), info["message"])


def _raise_worker_error(run_dir: Path, fallback: RunError) -> None:
    """Re-raise the one-line error a worker recorded (lowest rank first), else ``fallback``."""
    from graphevent.train.worker import error_file

    for rank in range(MAX_RANKS_SCANNED):
        path = error_file(run_dir, rank)
        if path.is_file():
            info = json.loads(path.read_text())
            cls = getattr(errors, info.get("type", ""), None)
            if not (isinstance(cls, type) and issubclass(cls, GraphEventError)):
                cls = RunError
            raise cls(info["message"]) from None
    raise fallback


#: What identifies the dataset a run trains on (dataset.json "identity"), compared on --resume
#: in this order: the first difference is named.
IDENTITY_KEYS = ("classes", "splits", "dataset_id", "manifest_sha256")


def dataset_identity(data: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dataset's id, manifest hash, class names and split sizes (from its manifest.json,
    ``manifest`` if already loaded)."""
    import hashlib

    from graphevent.data.info import load_manifest

    manifest = load_manifest(data) if manifest is None else manifest
    return {
        "classes": manifest["classes"],
        "splits": manifest["splits"],
        "dataset_id": manifest["dataset_id"],
        "manifest_sha256": hashlib.sha256((Path(data) / "manifest.json").read_bytes()).hexdigest(),
    }


def check_resume_dataset(run_dir: Path, data: Path) -> None:
    """Refuse ``--resume`` with a ``--data`` other than the dataset the run was started on.

    Raises:
        RunError: naming the first difference, e.g. ``classes is ['gluon', 'quark']; the run
            was trained on ['quark', 'gluon']``.
    """
    path = Path(run_dir) / "dataset.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"--resume {run_dir}: cannot read {path.name} ({exc}); cannot check that --data is its dataset") from None
    old = stored.get("identity") if isinstance(stored, dict) else None
    if old is None and isinstance(stored, dict) and "manifest_sha256" in stored:  # runs started before "identity"
        old = {"manifest_sha256": stored["manifest_sha256"]}
    if not isinstance(old, dict):
        raise RunError(f"--resume {run_dir}: {path.name} has no dataset identity; cannot check that --data is its dataset")
    new = dataset_identity(data)
    for key in IDENTITY_KEYS:
        if key in old and old[key] != new[key]:
            raise RunError(
                f"--resume {run_dir}: --data {data} is not the dataset this run was trained on: "
                f"{key} is {new[key]!r}; the run was trained on {old[key]!r} ({stored.get('path')})"
            )


def _write_run_files(run_dir: Path, cfg: ExperimentConfig, data: Path, launch: dict[str, Any], resume: bool = False) -> None:
    from graphevent.data.info import DatasetInfo, load_manifest
    from graphevent.nn.checkpoint import asdict_plain
    from graphevent.train.rundir import write_json_atomic

    tmp = run_dir / ".config.yaml.tmp"
    dump_yaml(cfg, tmp)
    os.replace(tmp, run_dir / "config.yaml")
    if not resume:  # a resumed run keeps the record of the dataset it started on (checked equal)
        manifest = load_manifest(data)
        identity = dataset_identity(data, manifest)
        write_json_atomic(run_dir / "dataset.json", {
            "path": str(Path(data).resolve()),
            "manifest": str((Path(data) / "manifest.json").resolve()),
            "manifest_sha256": identity["manifest_sha256"],
            "identity": identity,
            "info": asdict_plain(DatasetInfo.from_dir(data)),
            # the resolved data config: `graphevent predict` preprocesses new files with it
            "data_config": manifest.get("config"),
        })
    write_json_atomic(run_dir / "launch.json", launch)


def _data_dir(options: TrainOptions, run_dir: Path, resume: bool) -> Path:
    """``--data``, or for a resumed run the dataset recorded in ``RUN_DIR/dataset.json``."""
    if options.data is not None:
        return Path(options.data)
    if not resume:
        raise ConfigError("--data: required for a new run (a dataset directory written by `graphevent preprocess`)")
    record = run_dir / "dataset.json"
    if not record.is_file():
        raise RunError(f"--resume {run_dir}: no dataset.json (not a graphevent run directory); pass --data")
    return Path(json.loads(record.read_text())["path"])


def train(options: TrainOptions, notify: Callable[[str], None] | None = None) -> TrainResult:
    """Run ``graphevent train``: check inputs, prepare ``options.out``, train, report.

    Args:
        notify: called with each one-line note before training starts (the CLI prints them;
            they are in :attr:`TrainResult.notes` too), e.g. that a resumed run now has
            another number of processes.

    Raises:
        ConfigError, DataError, RunError, DeviceError: bad input (one line each).
    """
    run_dir = Path(options.out)
    if not any(k in os.environ for k in ("WORLD_SIZE", "SLURM_PROCID")):
        # started directly: what needs no torch is checked first, so a wrong option or path
        # fails in about a second instead of after torch's import
        first = TrainOptions(**{**options.__dict__, "data": _data_dir(options, run_dir, options.resume)})
        resolve_config(first)
        from graphevent.data.info import load_manifest

        if not Path(first.data).exists():
            raise errors.DataError(f"--data {first.data}: dataset directory not found")
        load_manifest(first.data)

    import torch

    from graphevent.utils.distributed import launcher_env
    from graphevent.train.rundir import prepare_run_dir
    from graphevent.utils.outdir import OutputDir, ReadLock

    layout = launcher_env()
    rank = layout["rank"] if layout else 0
    restarted = bool(layout and layout["restart_count"] > 0)
    resume = options.resume or (restarted and (run_dir / "checkpoints" / "last.pt").is_file())
    options = TrainOptions(**{**options.__dict__, "resume": resume, "data": _data_dir(options, run_dir, resume)})
    if options.nnodes < 1 or not 0 <= options.node_rank < options.nnodes:
        raise ConfigError(f"--nnodes {options.nnodes} --node-rank {options.node_rank}: expected 0 <= node rank < nodes")

    cfg = resolve_config(options)
    if cfg.train.deterministic:
        from graphevent.train.engine import deterministic_cublas

        deterministic_cublas()
    if layout is not None:  # started by torchrun / srun: this process is one worker
        if options.nproc > 1 or options.nnodes > 1:
            raise ConfigError("--nproc/--nnodes: the processes were already started by torchrun/srun; drop these options")
        if options.gpus is None:
            use_cuda = torch.cuda.is_available()
        else:
            use_cuda = options.gpus > 0
        world, nproc = layout["world_size"], 1
    else:
        use_cuda, nproc = _device_plan(options)
        world = nproc * options.nnodes
    launch = {"data": str(Path(options.data).resolve()), "use_cuda": use_cuda, "resume": resume, "progress": options.progress}

    od = None
    notes: list[str] = []
    if rank == 0 and options.node_rank == 0:  # the launching process locks; workers never do
        inputs = [options.data] if resume else [options.data, *([options.config] if options.config else []), *cfg.train.init_from]
        od = OutputDir(run_dir, "run", inputs=inputs).acquire(unmarked_ok=resume)
    reading = ExitStack()
    try:
        if od is not None:  # the dataset and the runs it starts from stay as they are while it trains
            reading.enter_context(ReadLock(options.data, "--data"))
            for init in cfg.train.init_from:
                reading.enter_context(ReadLock(init, "--init-from"))
            last = run_dir / "checkpoints" / "last.pt"
            if resume and last.is_file():  # before config.yaml is rewritten
                from graphevent.nn.checkpoint import load_checkpoint

                notes = check_resume_record(run_dir, load_checkpoint(last), cfg, world)
            try:
                notes += check_inputs(cfg, Path(options.data), resume=resume)[1]
            except ConfigError as exc:  # model settings are checked here, by key ("model.k: ...")
                raise name_override(exc, "", options.overrides, options.option_labels) from None
            check_replaced_model_overrides(options)
            if resume and last.is_file():  # before the marker is touched
                check_resume_dataset(run_dir, Path(options.data))
            for note in notes if notify is not None else ():
                notify(note)
            prepare_run_dir(od, resume=resume, overwrite=options.overwrite or restarted)
            for stale in (run_dir / "logs").glob("rank*.error") if (run_dir / "logs").is_dir() else ():
                stale.unlink()
            (run_dir / "logs" / "interrupted.json").unlink(missing_ok=True)
            _write_run_files(run_dir, cfg, Path(options.data), launch, resume=resume)
        result = replace(_run(options, cfg, run_dir, layout, launch, use_cuda, nproc, world, rank), notes=tuple(notes),
                         units=validation_units(cfg.tasks))
        if od is not None:
            od.complete()
    except BaseException:  # an error, or SIGINT/SIGTERM (graphevent.errors.Stopped) outside the training loop
        if od is not None and not resume and not (run_dir / "checkpoints" / "last.pt").is_file():
            od.abandon()  # a run that failed before its first checkpoint leaves nothing behind
        raise
    finally:
        reading.close()
        if od is not None:
            od.release()
    return result


def _run(options: TrainOptions, cfg: ExperimentConfig, run_dir: Path, layout: dict[str, Any] | None,
         launch: dict[str, Any], use_cuda: bool, nproc: int, world: int, rank: int) -> TrainResult:
    """Train in this process or through the elastic launcher; the run directory is prepared."""
    from graphevent.utils.distributed import launch_elastic
    from graphevent.train.rundir import read_metrics
    from graphevent.train.worker import error_file, run_worker

    if layout is not None or world == 1:
        callbacks = None
        if rank == 0:
            from graphevent.train.progress import train_callbacks

            callbacks = train_callbacks(options.progress, validation_units(cfg.tasks))
        summary = run_worker(cfg, run_dir, launch, callbacks)
    else:
        if not use_cuda:
            os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        from torch.distributed.elastic.multiprocessing.api import SignalException

        try:
            launch_elastic(
                [str(run_dir / "launch.json")], nproc, run_dir / "logs" / "elastic",
                nnodes=options.nnodes, node_rank=options.node_rank, master_addr=options.master_addr,
                master_port=options.master_port, max_restarts=cfg.train.max_restarts,
            )
        except RunError as exc:
            _raise_interrupted(run_dir)
            _raise_worker_error(run_dir, exc)
        except SignalException as exc:  # SIGINT/SIGTERM to this launcher, forwarded to the workers
            _raise_interrupted(run_dir)
            raise errors.Interrupted(int(exc.sigval), f"interrupted by {signal.Signals(exc.sigval).name} before the workers "
                                               f"saved a checkpoint; {run_dir} holds the last one saved, if any") from None
        _raise_interrupted(run_dir)
        if error_file(run_dir, 0).is_file():
            _raise_worker_error(run_dir, RunError("training failed"))
        summary = {}
    records = read_metrics(run_dir)
    if not summary and records:  # workers ran in other processes: summarise from their metrics
        last = records[-1]
        monitor = next((k.removeprefix("best_") for k in last if k.startswith("best_") and k != "best_epoch"), None)
        summary = {
            "epochs": last["epoch"], "steps": last["step"], "monitor": monitor,
            "best": last.get(f"best_{monitor}"), "best_epoch": last.get("best_epoch"),
            "stopped_early": last["epoch"] < cfg.train.epochs, "last": last,
        }
    device = ("cuda" if use_cuda else "cpu") + f" x{world}"
    return TrainResult(run_dir=run_dir, world_size=world, device=device, epochs=records, summary=summary)


def summary_table(result: TrainResult):
    """A rich table of the run's epochs (train/val losses, monitored metric, events/s)."""
    from rich.table import Table

    monitor = result.summary.get("monitor")
    title = f"{result.run_dir}  ({result.device})"
    table = Table(title=title, title_justify="left")
    cols = ["epoch", "train_loss", "val_loss"]
    if monitor and monitor not in cols:
        cols.append(monitor)
    for c in cols + ["events/s"]:
        table.add_column(f"{c} [{result.units[c]}]" if c in result.units else c, justify="right")
    best_epoch = result.summary.get("best_epoch")
    for r in result.epochs:
        cells = [str(r["epoch"])] + [f"{r[c]:.4g}" if isinstance(r.get(c), float) else "-" for c in cols[1:]]
        cells.append(f"{r.get('events_per_s', 0.0):,.0f}")
        table.add_row(*cells, style="bold green" if r["epoch"] == best_epoch else None)
    if result.summary.get("best") is not None:
        stop = ", stopped early" if result.summary.get("stopped_early") else ""
        unit = f" {result.units[monitor]}" if monitor in result.units else ""
        table.caption = f"best {monitor} = {result.summary['best']:.4g}{unit} at epoch {best_epoch} (checkpoints/best.pt){stop}"
    return table
