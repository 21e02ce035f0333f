"""The training loop: DDP, mixed precision, accumulation, clipping, validation, checkpoints.

:class:`Trainer` trains a built model on one worker of a (possibly single-process) data-
parallel group. Every rank builds the same batch plan (:mod:`graphevent.train.sampler`),
so resuming needs only the epoch, the batch offset and the states saved in ``last.pt``:
a run killed at any point and resumed ends with the same weights as an uninterrupted one.

Reproducibility rules the loop keeps:

* the DataLoader gets its own ``torch.Generator``, so creating an iterator (e.g. in the
  middle of an epoch after a resume) does not consume the global RNG;
* validation runs under ``torch.random.fork_rng`` with a fixed seed: the same masks every
  epoch, and the training RNG stream is untouched by it;
* checkpoints are written only at optimizer-step boundaries (no accumulated gradients
  are lost) with every rank's RNG state.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from graphevent.config.base import to_dict
from graphevent.config.experiment import ExperimentConfig, metric_mode
from graphevent.errors import ConfigError, Interrupted, RunError
from graphevent.nn.checkpoint import CHECKPOINT_FORMAT, asdict_plain, rng_state, save_checkpoint, set_rng_state
from graphevent.utils.distributed import DistContext, all_gather_objects, all_reduce_sum
from graphevent.train.optim import build_optimizer, build_scheduler, group_schedules
from graphevent.train.sampler import DistributedBatchSampler

VAL_SEED_OFFSET = 7919
#: a large prime between seed streams: per rank in seed_worker, per step when resuming with another world size
SEED_STRIDE = 1_000_003
#: cuBLAS workspace that makes its results deterministic (set before CUDA initialises)
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def collate_graphs(data_list):
    """PyG batching of a list of ``Data`` (a module-level function, so workers can pickle it)."""
    from torch_geometric.data import Batch

    return Batch.from_data_list(data_list)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` on ``device`` (``None`` = full precision)."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.amp: 'fp16' needs a CUDA device; use 'bf16' or 'off' on CPU")
        return torch.float16
    return torch.bfloat16


class TrainCallbacks:
    """Hooks the loop calls on rank 0 (progress bars, logs). The default does nothing."""

    def on_epoch_start(self, epoch: int, epochs: int, total_batches: int, done_batches: int) -> None:
        """``epoch`` is 1-based; ``done_batches`` > 0 when resuming mid-epoch."""

    def on_batch(self, done_batches: int, loss: float | None, events_per_s: float) -> None:
        """After each batch; ``loss`` (running epoch mean) only every ``log_every_steps``."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """With the epoch's metrics line."""

    def on_train_end(self, summary: dict[str, Any]) -> None:
        """Once, with :meth:`Trainer.fit`'s summary."""

    def on_note(self, text: str) -> None:
        """Before training: a setting the run changed for itself (e.g. layer decay switched off)."""


@dataclass
class TrainState:
    """Position of the run and early-stopping bookkeeping (saved in checkpoints)."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    sums: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, Any] = field(default_factory=dict)


class _StopSignals:
    """While active, SIGINT and SIGTERM only record the signal (``signum``); the training loop
    checks it after each optimizer step. A second SIGINT raises KeyboardInterrupt at once.
    Outside the main thread (where handlers cannot be set) it records nothing; a signal the
    process was started with ignored stays ignored."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored by whoever started us (nohup, a background job): stays ignored
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Trainer:
    """Train ``model`` for ``cfg.stage`` on this worker's share of ``train_set``.

    Args:
        model: a GraphModel (``model(batch, stage) -> (loss, logs)``), not yet on a device.
        cfg: the resolved experiment config.
        train_set: indexable events (``GraphDataset`` or a list of ``Data``).
        train_nodes: ``(len(train_set),)`` node counts (node-balanced batching).
        ctx: this worker's :class:`DistContext`.
        val_set, val_nodes: validation events and node counts (``None``: no validation).
        train_indices: the events to train on (e.g. a label subset); default all.
        run_dir: where checkpoints and logs go (``None``: nothing written).
        callbacks: rank-0 hooks (progress bar).
        logger: rank-0 metrics writer with ``log_epoch(record)`` / ``log_step(step, values)``.
        checkpoint_extra: entries added to every checkpoint (dataset info, tasks, ...).
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: ExperimentConfig,
        train_set: Sequence[Any],
        train_nodes: Sequence[int] | np.ndarray,
        ctx: DistContext,
        val_set: Sequence[Any] | None = None,
        val_nodes: Sequence[int] | np.ndarray | None = None,
        train_indices: Sequence[int] | np.ndarray | None = None,
        run_dir: Path | None = None,
        callbacks: TrainCallbacks | None = None,
        logger: Any = None,
        checkpoint_extra: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.tc = cfg.train
        self.ctx = ctx
        self.device = ctx.device
        self.stage = cfg.stage
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = callbacks if (callbacks is not None and ctx.is_main) else TrainCallbacks()
        self._signals: _StopSignals | None = None
        self.logger = logger if ctx.is_main else None
        self.checkpoint_extra = checkpoint_extra or {}
        self.model = model.to(self.device)
        self.amp = amp_dtype(self.tc.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp is torch.float16)

        self.train_set = train_set
        self.sampler = DistributedBatchSampler(
            train_nodes, self.tc.batch_size, self.tc.max_nodes_per_batch, train_indices,
            ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed,
            min_events=self.tc.min_steps_per_epoch * self.tc.accumulate * self.tc.batch_size * ctx.world_size,
        )
        self.val_set = val_set if (val_set is not None and len(val_set) > 0) else None
        self.val_sampler = None
        if self.val_set is not None:
            self.val_sampler = DistributedBatchSampler(
                val_nodes, self.tc.batch_size, self.tc.max_nodes_per_batch, None,
                ctx.world_size, ctx.rank, shuffle=False, seed=cfg.seed,
            )
        elif self.tc.early_stopping_patience > 0:
            raise ConfigError("train.early_stopping_patience: early stopping needs a validation split; the dataset has none")

        self.steps_per_epoch = math.ceil(self.sampler.num_batches() / self.tc.accumulate)
        split = self.tc.encoder_lr_scale != 1.0 or self.tc.encoder_frozen_epochs > 0 or self.tc.encoder_layer_decay != 1.0
        self.optimizer = build_optimizer(self.model, self.tc.lr, self.tc.weight_decay, self.tc.betas, split_encoders=split,
                                         layer_decay=self.tc.encoder_layer_decay)
        self.scheduler = build_scheduler(
            self.optimizer, self.steps_per_epoch, self.tc.epochs, self.tc.warmup_epochs, self.tc.min_lr_ratio,
            self.tc.encoder_lr_scale, self.tc.encoder_frozen_epochs,
        )
        # optimizer steps with the encoders' learning rate held at 0 (train.encoder_frozen_epochs)
        self.encoder_hold_steps = max((f.hold_steps for f in self.scheduler.lr_lambdas), default=0)
        self.state = TrainState()
        self.ddp: nn.Module = self.model  # replaced by the DDP wrapper in fit()
        self._loader_gen = torch.Generator()
        self._loaders: dict[int, DataLoader] = {}  # persistent loaders by sampler (num_workers > 0)

    # ------------------------------------------------------------------ setup helpers
    def _loader(self, dataset, sampler) -> DataLoader:
        """The loader of ``dataset`` in ``sampler``'s batches. With worker processes it is made
        once per run and its workers persist: they are not restarted (and the dataset not
        reopened) at every epoch and every validation; each ``iter`` follows the sampler's
        current epoch."""
        workers = self.tc.num_workers
        if workers > 0 and id(sampler) in self._loaders:
            return self._loaders[id(sampler)]
        self._loader_gen.manual_seed(self.cfg.seed)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate_graphs,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            generator=self._loader_gen,
            persistent_workers=workers > 0,
        )
        if workers > 0:
            self._loaders[id(sampler)] = loader
        return loader

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _find_unused(self) -> bool:
        """Whether DDP must look for parameters without gradients.

        ``train.find_unused_parameters`` decides when set; otherwise one probe step on this
        rank's first batch (forked RNG, buffers restored, gradients dropped: no trace left)
        checks whether every trainable parameter receives a gradient, and the ranks agree.
        """
        if self.tc.find_unused_parameters is not None:
            return bool(self.tc.find_unused_parameters)
        self.sampler.set_epoch(self.state.epoch)
        batch = collate_graphs([self.train_set[int(i)] for i in self.sampler.plan()[0][self.ctx.rank]]).to(self.device)
        buffers = {k: v.detach().clone() for k, v in self.model.named_buffers()}
        params = [p for p in self.model.parameters() if p.requires_grad]
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            with self._autocast():
                loss, _ = self.model(batch, self.stage)
            loss.float().backward()
        unused = float(any(p.grad is None for p in params))
        for p in params:
            p.grad = None
        with torch.no_grad():
            for k, v in self.model.named_buffers():
                v.copy_(buffers[k])
        return bool(all_reduce_sum(torch.tensor([unused], dtype=torch.float64), self.ctx).item() > 0)

    def _wrap_ddp(self) -> None:
        if not self.ctx.distributed:
            self.ddp = self.model
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DDP(self.model, device_ids=ids, find_unused_parameters=self._find_unused())

    def _unwrap_ddp(self) -> None:
        """Drop the DDP wrapper (its reducer must go before the process group is destroyed)."""
        self.ddp = self.model

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue (collective: every rank must call it)."""
        per_rank = all_gather_objects({"rng": rng_state(self.device), "sums": dict(self.state.sums)}, self.ctx)
        s = self.state
        return {
            "format": CHECKPOINT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {"world_size": self.ctx.world_size, "ranks": [r["rng"] for r in per_rank]},
            "epoch": s.epoch,
            "step": s.step,
            "batch_in_epoch": s.batch_in_epoch,
            "progress": {
                "best": s.best, "best_epoch": s.best_epoch, "bad_epochs": s.bad_epochs,
                "stopped_early": s.stopped_early, "sums": [r["sums"] for r in per_rank],
            },
            "config": to_dict(self.cfg),
            "model_config": dict(getattr(self.model, "model_config", self.cfg.model)),
            "tasks": asdict_plain(list(self.cfg.tasks)),
            "metrics": dict(s.last_metrics),
            **self.checkpoint_extra,
        }

    def save(self, which: Sequence[str] = ("last",)) -> None:
        """Write ``checkpoints/<which>.pt`` (rank 0 writes; all ranks take part)."""
        state = self.state_dict()
        if self.run_dir is None or not self.ctx.is_main:
            return
        for name in which:
            save_checkpoint(state, self.run_dir / "checkpoints" / f"{name}.pt")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state_dict` (call before :meth:`fit`)."""
        saved_world = state["rng"]["world_size"]
        same_world = saved_world == self.ctx.world_size
        if int(state.get("batch_in_epoch", 0)) and not same_world:
            raise ConfigError(
                f"resume: the checkpoint stopped mid-epoch with {saved_world} workers; "
                f"resume it with the same number of workers (now {self.ctx.world_size})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # the schedule's length follows the current config (e.g. more epochs on resume)
        self.scheduler.lr_lambdas = group_schedules(
            self.optimizer, self.steps_per_epoch, self.tc.epochs, self.tc.warmup_epochs, self.tc.min_lr_ratio,
            self.tc.encoder_lr_scale, self.tc.encoder_frozen_epochs,
        )
        self.scaler.load_state_dict(state["scaler"])
        prog = state.get("progress", {})
        sums = prog.get("sums") or []
        self.state = TrainState(
            epoch=int(state["epoch"]),
            step=int(state["step"]),
            batch_in_epoch=int(state.get("batch_in_epoch", 0)),
            best=prog.get("best"),
            best_epoch=int(prog.get("best_epoch", 0)),
            bad_epochs=int(prog.get("bad_epochs", 0)),
            stopped_early=bool(prog.get("stopped_early", False)),
            sums=dict(sums[self.ctx.rank]) if (same_world and len(sums) > self.ctx.rank) else {},
            last_metrics=dict(state.get("metrics", {})),
        )
        if same_world:
            set_rng_state(state["rng"]["ranks"][self.ctx.rank], self.device)
        else:  # a different worker count cannot continue the old streams: derive new ones
            seed_worker(self.cfg.seed + SEED_STRIDE * self.state.step, self.ctx.rank)

    # ------------------------------------------------------------------ stopping on signals
    def _stop_signal(self) -> int:
        """The SIGINT/SIGTERM received by any worker since training started (0: none).
        Collective when distributed (every worker stops at the same step)."""
        signum = self._signals.signum if self._signals is not None else 0
        if self.ctx.distributed:
            got = all_reduce_sum(torch.tensor([float(signum > 0), float(signum)], dtype=torch.float64), self.ctx)
            signum = int(got[1] / got[0]) if got[0] > 0 else 0
        return signum

    def _interrupt(self, signum: int) -> None:
        """Raise :class:`Interrupted` naming the checkpoint just saved and how to resume."""
        self.callbacks.on_train_end({})
        s = self.state
        where = f"{self.run_dir / 'checkpoints' / 'last.pt'}" if self.run_dir is not None else "checkpoints/last.pt"
        position = f"epoch {s.epoch + 1}, batch {s.batch_in_epoch}" if s.batch_in_epoch else f"end of epoch {s.epoch}"
        raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name}: checkpoint saved to {where} "
                                  f"({position}, step {s.step}); resume with: graphevent train --out {self.run_dir} --resume")

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        """Train until ``train.epochs`` or early stopping; returns a summary dict.

        SIGINT or SIGTERM (Ctrl-C, SLURM pre-emption) does not kill the run: the current
        optimizer step ends, ``checkpoints/last.pt`` is saved (within an epoch, like
        ``checkpoint_every_steps``) and :class:`~graphevent.errors.Interrupted` is raised.
        A second Ctrl-C stops at once.
        """
        with _StopSignals() as signals:
            self._signals = signals
            try:
                return self._fit()
            finally:
                self._signals = None

    def _fit(self) -> dict[str, Any]:
        self._wrap_ddp()
        metric = self.tc.early_stopping_metric
        mode = metric_mode(metric) if self.val_set is not None else "min"
        monitored = metric if self.val_set is not None else "train_loss"
        while self.state.epoch < self.tc.epochs and not self.state.stopped_early:
            record = self._train_epoch()
            if self.val_set is not None:
                record.update(self.validate())
            if not math.isfinite(record["train_loss"]):
                raise RunError(f"training diverged: train_loss is {record['train_loss']} in epoch {record['epoch']}; lower train.lr or enable train.grad_clip")
            value = record.get(monitored)
            if value is None:
                raise ConfigError(f"train.early_stopping_metric: {monitored!r} is not among this run's metrics {sorted(record)}")
            improved = self.state.best is None or (value < self.state.best if mode == "min" else value > self.state.best)
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            self.state.sums = {}
            if improved:
                self.state.best, self.state.best_epoch, self.state.bad_epochs = float(value), self.state.epoch, 0
            else:
                self.state.bad_epochs += 1
            patience = self.tc.early_stopping_patience
            if patience > 0 and self.state.bad_epochs >= patience and self.state.epoch < self.tc.epochs:
                self.state.stopped_early = True
            record.update({"best_" + monitored: self.state.best, "best_epoch": self.state.best_epoch})
            self.state.last_metrics = record
            if self.logger is not None:
                self.logger.log_epoch(record)
            self.save(("best", "last") if improved else ("last",))
            self.callbacks.on_epoch_end(record)
            if self.state.epoch < self.tc.epochs and not self.state.stopped_early:
                signum = self._stop_signal()
                if signum:
                    self._interrupt(signum)
        self._loaders.clear()  # their worker processes exit
        self._unwrap_ddp()
        summary = {
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "monitor": monitored,
            "best": self.state.best,
            "best_epoch": self.state.best_epoch,
            "stopped_early": self.state.stopped_early,
            "last": dict(self.state.last_metrics),
        }
        self.callbacks.on_train_end(summary)
        return summary

    def _train_epoch(self) -> dict[str, Any]:
        tc, s = self.tc, self.state
        self.sampler.set_epoch(s.epoch, start=s.batch_in_epoch)
        total = self.sampler.num_batches()
        start = self.sampler.start
        weights = self.sampler.loss_weights()
        step_events = self.sampler.step_events()
        self.callbacks.on_epoch_start(s.epoch + 1, tc.epochs, total, start)
        self.model.train()
        self._hold_encoders()
        sums = s.sums
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        n_local = 0.0
        events_done = 0
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(self._loader(self.train_set, self.sampler)):
            b = start + i
            g0 = (b // tc.accumulate) * tc.accumulate
            group = min(tc.accumulate, total - g0)
            step_end = b - g0 == group - 1
            batch = batch.to(self.device, non_blocking=True)
            n = float(batch.num_graphs)
            sync = contextlib.nullcontext() if (step_end or not self.ctx.distributed) else self.ddp.no_sync()
            with sync:
                with self._autocast():
                    loss, logs = self.ddp(batch, self.stage)
                self.scaler.scale(loss * float(weights[i]) / group).backward()
            loss_sum += loss.detach().double() * n
            n_local += n
            for k, v in logs.items():
                if k != "loss":  # the total is tracked above; logs hold its components
                    sums["train_" + k] = sums.get("train_" + k, 0.0) + float(v) * n
            events_done += int(step_events[i])
            if step_end:
                self._optimizer_step()
                s.batch_in_epoch = b + 1
                if tc.checkpoint_every_steps and s.step % tc.checkpoint_every_steps == 0 and b + 1 < total:
                    self._fold(sums, loss_sum, n_local)
                    loss_sum.zero_()
                    n_local = 0.0
                    self.save(("last",))
                if b + 1 < total:  # at an epoch's end, the epoch's own checkpoint comes first
                    signum = self._stop_signal()
                    if signum:
                        self._fold(sums, loss_sum, n_local)
                        self.save(("last",))
                        self._interrupt(signum)
            dt = max(time.perf_counter() - t0, 1e-9)
            show = step_end and tc.log_every_steps and s.step % tc.log_every_steps == 0
            running = None
            if show or b + 1 == total:
                running = (sums.get("loss", 0.0) + float(loss_sum)) / max(sums.get("n", 0.0) + n_local, 1.0)
                if self.logger is not None and show:
                    self.logger.log_step(s.step, {"train/loss": float(loss.detach()), "train/lr": self.optimizer.param_groups[0]["lr"]})
            self.callbacks.on_batch(b + 1, running, events_done / dt)
        train_time = time.perf_counter() - t0
        self._fold(sums, loss_sum, n_local)
        agg = self._sum_over_ranks(sums)
        n_all = max(agg.pop("n", 0.0), 1.0)
        record: dict[str, Any] = {
            "epoch": s.epoch + 1,
            "step": s.step,
            "train_loss": agg.pop("loss", 0.0) / n_all,
            **{k: v / n_all for k, v in agg.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
            "events_per_s": events_done / max(train_time, 1e-9),
            "train_events": int(events_done),
            "time_s": train_time,
        }
        return record

    def _sum_over_ranks(self, sums: dict[str, float]) -> dict[str, float]:
        """Sum named values over all workers (a key missing on a rank counts as 0)."""
        keys = sorted(set().union(*all_gather_objects(sorted(sums), self.ctx)))
        totals = all_reduce_sum(torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64), self.ctx)
        return dict(zip(keys, totals.tolist()))

    @staticmethod
    def _fold(sums: dict[str, float], loss_sum: torch.Tensor, n_local: float) -> None:
        sums["loss"] = sums.get("loss", 0.0) + float(loss_sum)
        sums["n"] = sums.get("n", 0.0) + n_local

    def _optimizer_step(self) -> None:
        if self.tc.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, self.tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        self.model.after_optimizer_step(self.state.step, self.steps_per_epoch * self.tc.epochs)
        self._hold_encoders()

    def _hold_encoders(self) -> None:
        """Encoders in eval mode during the held steps (see :meth:`GraphModel.hold_encoders`)."""
        if self.encoder_hold_steps:
            self.model.hold_encoders(self.state.step < self.encoder_hold_steps)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss (mean over events) and per-task metrics, over all workers.

        Each task reports its type's validation metrics (AUC and accuracy; the mean absolute
        error in physical units) from the same metric objects ``graphevent eval`` uses
        (:func:`graphevent.metrics.base.task_metrics`). Runs with a fixed RNG seed (same masks each epoch).
        """
        model = self.model
        was_training = model.training
        model.eval()
        info = getattr(model, "info", None)
        metrics: dict[str, Any] = {}
        if self.cfg.trains_tasks:
            from graphevent.metrics.base import task_metrics  # imported only when there are task metrics (torchmetrics is slow to import)

            classes = info.classes if info is not None else ("0", "1")
            targets = info.targets if info is not None else ()
            metrics = {t.name: task_metrics(t, classes, targets).to(self.device) for t in self.cfg.tasks}
        sums: dict[str, float] = {"loss": 0.0, "n": 0.0}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed + VAL_SEED_OFFSET)
            self.val_sampler.set_epoch(0)
            for batch in self._loader(self.val_set, self.val_sampler):
                batch = batch.to(self.device, non_blocking=True)
                n = float(batch.num_graphs)
                with self._autocast():
                    loss, logs = model(batch, self.stage)
                    preds = model.predict(batch) if metrics else {}
                sums["loss"] += float(loss) * n
                sums["n"] += n
                for k, v in logs.items():
                    if k != "loss":
                        sums["val_" + k] = sums.get("val_" + k, 0.0) + float(v) * n
                for name, m in metrics.items():
                    m.update_batch(preds[name].float(), batch)
        totals = self._sum_over_ranks(sums)
        n_all = max(totals.pop("n", 0.0), 1.0)
        out = {"val_loss": totals.pop("loss", 0.0) / n_all}
        out.update({k: v / n_all for k, v in totals.items()})
        for name, m in metrics.items():
            out.update({f"val_{name}_{k}": v for k, v in m.validation_values().items()})
        model.train(was_training)
        return out


def seed_worker(seed: int, rank: int = 0) -> None:
    """Seed torch, numpy and python RNGs for this rank (different streams per rank)."""
    import random

    s = (int(seed) * SEED_STRIDE + int(rank)) % (2**63 - 1)
    torch.manual_seed(s)
    np.random.seed(s % (2**32))
    random.seed(s)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every RNG identically (model initialisation) and set deterministic mode."""
    import random

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    if deterministic:
        deterministic_cublas()
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def deterministic_cublas() -> None:
    """Ask cuBLAS for its deterministic workspace (unless the user set one); takes effect
    only before CUDA initialises, so the launcher calls it too."""
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
