"""One training worker: build dataset, model and :class:`Trainer` from a run directory, train.

Runs in-process (single process, or one process started by torchrun/srun) or as
``python -m graphevent.train.worker RUN_DIR/launch.json`` under the elastic launcher.
Ranks other than 0 write their output to ``RUN_DIR/logs/rank<R>.log`` instead of the
terminal. A worker restarted by the launcher (``TORCHELASTIC_RESTART_COUNT > 0``)
resumes from ``checkpoints/last.pt``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from graphevent.config.experiment import ExperimentConfig
from graphevent.errors import ConfigError, GraphEventError, Interrupted


def _silence(run_dir: Path, rank: int) -> None:
    """Send this process's stdout/stderr (Python and C level) to ``logs/rank<R>.log``."""
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_dir / f"rank{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def error_file(run_dir: Path, rank: int) -> Path:
    return run_dir / "logs" / f"rank{rank}.error"


def interrupted_file(run_dir: Path) -> Path:
    """Written by rank 0 when a signal stopped training after saving a checkpoint."""
    return run_dir / "logs" / "interrupted.json"


def open_inputs(cfg: ExperimentConfig, data, verify: bool, in_memory: bool = False):
    """The train and val splits of ``data`` and the model ``cfg`` builds for them (its tasks
    checked against the dataset, its stage against the model): the one place a run opens its
    inputs, used by the launcher's checks and by every worker.

    Returns:
        ``(train_set, val_set, model)``.
    """
    from graphevent.data.dataset import GraphDataset
    from graphevent.nn.registry import build_model
    from graphevent.nn.tasks import check_tasks

    train_set = GraphDataset(data, "train", verify=verify, in_memory=in_memory)
    val_set = GraphDataset(data, "val", verify=verify, in_memory=in_memory)
    tasks = check_tasks(cfg.tasks, train_set.info, "tasks") if cfg.trains_tasks else []
    model = build_model(cfg.model, train_set.info, tasks or None)
    model.check_stage(cfg.stage)
    return train_set, val_set, model


def load_init_from(model, sources) -> list[tuple[str, list[str], int]]:
    """Copy the encoders of each ``train.init_from`` source into ``model``.

    Returns:
        per source ``(source, encoder names copied, tensors copied)`` (parameters and buffers).

    Raises:
        ConfigError: an encoder comes from two sources, or has another architecture.
    """
    from graphevent.nn.checkpoint import transfer_encoders

    done: list[tuple[str, list[str], int]] = []
    loaded: list[str] = []
    encoders = model.encoder_modules()
    for source in sources:
        names = transfer_encoders(model, source)
        twice = sorted(set(names) & set(loaded))
        if twice:
            raise ConfigError(f"--init-from {source}: encoder(s) {', '.join(twice)} already loaded from an earlier --init-from")
        loaded += names
        done.append((str(source), names, sum(len(encoders[name].state_dict()) for name in names)))
    return done


def labelled_subset(cfg: ExperimentConfig, train_set):
    """The train-event indices the heads learn from under ``train.label_fraction`` (seeded,
    at least ``train.min_labels_per_class`` per class); ``None``: every event."""
    from graphevent.data.label_subset import label_subset

    tc = cfg.train
    if not cfg.trains_tasks or tc.label_fraction >= 1:
        return None
    seed = cfg.seed if tc.label_seed is None else tc.label_seed
    classified = any(t.task_type.label_target for t in cfg.tasks)
    return label_subset(train_set.event_ids, tc.label_fraction, seed,
                        labels=train_set.labels() if classified else None, min_per_class=tc.min_labels_per_class)


def run_worker(cfg: ExperimentConfig, run_dir: Path, launch: dict[str, Any], callbacks=None) -> dict[str, Any]:
    """Train on this worker; returns :meth:`Trainer.fit`'s summary.

    Args:
        cfg: the resolved experiment config.
        run_dir: the prepared run directory.
        launch: ``{"data": DATASET_DIR, "use_cuda": bool, "resume": bool}``.
        callbacks: rank-0 progress hooks (``None``: silent).
    """
    from graphevent.nn.checkpoint import asdict_plain, load_checkpoint
    from graphevent.utils.distributed import all_gather_objects, barrier, init_distributed, shutdown
    from graphevent.train.engine import Trainer, seed_everything, seed_worker
    from graphevent.train.rundir import MetricsLogger, device_name, environment, write_env
    from graphevent.data.partial_labels import PartialLabels

    ctx = init_distributed(bool(launch["use_cuda"]))
    logger = None
    ok = False
    try:
        if not ctx.is_main:
            _silence(run_dir, ctx.rank)
        barrier(ctx)
        last = run_dir / "checkpoints" / "last.pt"
        resume = bool(launch.get("resume")) or (ctx.restart_count > 0 and last.is_file())
        tc = cfg.train
        seed_everything(cfg.seed, tc.deterministic)

        train_set, val_set, model = open_inputs(cfg, launch["data"], verify=False, in_memory=tc.in_memory)
        info = train_set.info

        state = load_checkpoint(last, map_location=ctx.device) if resume else None
        if state is not None:
            frozen = list(state.get("frozen_encoders", []))
            if frozen:
                model.freeze_encoders(frozen)
        else:
            loaded = None
            if tc.init_from:
                loaded = [name for _, names, _ in load_init_from(model, tc.init_from) for name in names]
            if tc.freeze_encoder:
                model.freeze_encoders(loaded)
        frozen = list(getattr(model, "frozen_encoders", []))
        seed_worker(cfg.seed, ctx.rank)  # per-rank streams for masking and dropout

        indices = labelled_subset(cfg, train_set)

        labelled = int(len(indices) if indices is not None else len(train_set))
        decay = tc.layer_decay_for(labelled)
        if decay != tc.encoder_layer_decay:  # what runs is what the checkpoint's config says
            cfg = replace(cfg, train=replace(tc, encoder_layer_decay=decay))
            if callbacks is not None and ctx.is_main and not resume:
                callbacks.on_note(f"train.encoder_layer_decay {tc.encoder_layer_decay:g} -> {decay:g} (off): {labelled:,} labelled "
                                  f"training events, at least train.encoder_layer_decay_max_labels={tc.encoder_layer_decay_max_labels:,}")
        if indices is not None and getattr(model, "trains_unlabelled", False):
            # semi-supervised: every event trains (the masked loss), only the subset's labels are read
            train_set, indices = PartialLabels(train_set, indices), None

        completed = int(state["epoch"]) if state is not None else 0
        if ctx.is_main:
            logger = MetricsLogger(run_dir, completed_epochs=completed)
        trainer = Trainer(
            model, cfg, train_set, train_set.num_nodes_per_event, ctx,
            val_set=val_set, val_nodes=val_set.num_nodes_per_event, train_indices=indices,
            run_dir=run_dir, callbacks=callbacks, logger=logger,
            checkpoint_extra={
                "dataset_info": asdict_plain(info),
                "frozen_encoders": frozen,
                "train_events": int(len(indices) if indices is not None else len(train_set)),
                "labelled_events": labelled,
            },
        )
        if state is not None:
            trainer.load_state_dict(state)
            del state
        devices = all_gather_objects(device_name(ctx.device), ctx)
        if ctx.is_main:
            write_env(run_dir, environment(ctx.world_size, ctx.backend, ctx.launcher, devices)
                      | {"restart_count": ctx.restart_count, "resumed": resume,
                         "amp": str(trainer.amp).replace("torch.", "") if trainer.amp else "off"})
        summary = trainer.fit()
        del trainer, model
        ok = True
        return summary
    finally:
        if logger is not None:
            logger.close()
        shutdown(ctx, sync=ok)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m graphevent.train.worker RUN_DIR/launch.json``."""
    from graphevent.config.base import load_yaml
    from graphevent.config.experiment import experiment_from_dict

    argv = sys.argv[1:] if argv is None else argv
    spec_path = Path(argv[0])
    launch = json.loads(spec_path.read_text())
    run_dir = spec_path.parent
    rank = int(os.environ.get("RANK", "0"))
    try:
        cfg = experiment_from_dict(load_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
        callbacks = None
        if rank == 0:
            from graphevent.config.tasks import validation_units
            from graphevent.train.progress import train_callbacks

            callbacks = train_callbacks(launch.get("progress", True), validation_units(cfg.tasks))
        run_worker(cfg, run_dir, launch, callbacks)
    except Interrupted as exc:  # checkpoint saved; the launcher reports it (no traceback here)
        if rank == 0:
            path = interrupted_file(run_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"signum": exc.signum, "message": str(exc)}))
        return exc.exit_code
    except GraphEventError as exc:
        path = error_file(run_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        if rank == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
