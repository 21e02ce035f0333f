"""Rank-0 progress display for training: a rich bar per epoch and a one-line epoch summary."""

from __future__ import annotations

from typing import Any

from graphevent.train.engine import TrainCallbacks


def epoch_line(record: dict[str, Any]) -> str:
    """``epoch 3 | train_loss 0.512 | val_loss 0.530 | val_label_auc 0.91 | 1,234 ev/s``."""
    parts = [f"epoch {record['epoch']}"]
    for k, v in record.items():
        if (k.startswith("val_") or k == "train_loss") and isinstance(v, float):
            parts.append(f"{k} {v:.4g}")
    parts.append(f"{record.get('events_per_s', 0.0):,.0f} events/s")
    return " | ".join(parts)


def train_callbacks(progress: bool) -> TrainCallbacks:
    """Rank 0's display: the progress bar, or (``--no-progress``, batch logs) one line per epoch."""
    return RichTrainProgress() if progress else EpochLines()


class EpochLines(TrainCallbacks):
    """One plain line per epoch (:func:`epoch_line`) on stdout, flushed: for batch-job logs."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        print(epoch_line(record), flush=True)


class RichTrainProgress(TrainCallbacks):
    """A rich progress bar per epoch with loss, events/s and ETA.

    Args:
        console: a ``rich.console.Console`` (stdout by default).
    """

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self._bar = None
        self._task = None

    def on_epoch_start(self, epoch: int, epochs: int, total_batches: int, done_batches: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn(f"[bold]epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=total_batches, completed=done_batches, loss="-", rate="")

    def on_batch(self, done_batches: int, loss: float | None, events_per_s: float) -> None:
        if self._bar is None:
            return
        fields = {"rate": f"{events_per_s:,.0f} events/s"}
        if loss is not None:
            fields["loss"] = f"{loss:.4g}"
        self._bar.update(self._task, completed=done_batches, **fields)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.console.print(epoch_line(record), highlight=False)

    def on_train_end(self, summary: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
