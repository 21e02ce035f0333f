"""Rank-0 progress display for training: a rich bar per epoch and a one-line epoch summary."""

from __future__ import annotations

from typing import Any

from graphevent.train.engine import TrainCallbacks


def epoch_parts(record: dict[str, Any], units: dict[str, str] | None = None) -> list[str]:
    """``["epoch 3", "train_loss 0.512", "val_label_auc 0.91", "val_mass_mae 14.35 GeV", "1,234 events/s"]``
    (``units``: unit of a value by key, :func:`graphevent.config.tasks.validation_units`)."""
    parts = [f"epoch {record['epoch']}"]
    for k, v in record.items():
        if (k.startswith("val_") or k == "train_loss") and isinstance(v, float):
            unit = (units or {}).get(k)
            parts.append(f"{k} {v:.4g}" + (f" {unit}" if unit else ""))
    parts.append(f"{record.get('events_per_s', 0.0):,.0f} events/s")
    return parts


def epoch_line(record: dict[str, Any], units: dict[str, str] | None = None) -> str:
    """``epoch 3 | train_loss 0.512 | val_loss 0.530 | val_label_auc 0.91 | 1,234 events/s``."""
    return " | ".join(epoch_parts(record, units))


def epoch_lines(record: dict[str, Any], width: int | None = None, units: dict[str, str] | None = None) -> list[str]:
    """:func:`epoch_line` as lines of at most ``width`` characters, broken only between
    ``name value`` pairs (continuation lines indented); ``width=None``: one line."""
    parts = epoch_parts(record, units)
    if width is None:
        return [" | ".join(parts)]
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " | " + part
        else:
            lines[-1] += " |"
            lines.append("  " + part)
    return lines


def train_callbacks(progress: bool, units: dict[str, str] | None = None) -> TrainCallbacks:
    """Rank 0's display: the progress bar, or (``--no-progress``, batch logs) one line per epoch;
    ``units``: of the validation metrics (:func:`graphevent.config.tasks.validation_units`)."""
    return RichTrainProgress(units=units) if progress else EpochLines(units)


class EpochLines(TrainCallbacks):
    """One plain line per epoch (:func:`epoch_line`) on stdout, flushed: for batch-job logs."""

    def __init__(self, units: dict[str, str] | None = None) -> None:
        self.units = units

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        print(epoch_line(record, self.units), flush=True)

    def on_note(self, text: str) -> None:
        print(f"note: {text}", flush=True)


class RichTrainProgress(TrainCallbacks):
    """A rich progress bar per epoch with loss, events/s and ETA.

    Args:
        console: a ``rich.console.Console`` (stdout by default).
        units: unit of a validation metric by key (``{"val_mass_mae": "GeV"}``).
    """

    def __init__(self, console=None, units: dict[str, str] | None = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.units = units
        self._bar = None
        self._task = None

    def on_epoch_start(self, epoch: int, epochs: int, total_batches: int, done_batches: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if not self.console.is_terminal:  # a log: no bar (its stop would leave a blank line per epoch)
            return
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
        # a terminal: lines broken between values; a log file: one line per epoch, never wrapped
        width = self.console.width if self.console.is_terminal else None
        for line in epoch_lines(record, width, self.units):
            self.console.print(line, highlight=False, soft_wrap=True)

    def on_train_end(self, summary: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def on_note(self, text: str) -> None:
        self.console.print(f"note: {text}", highlight=False, soft_wrap=True)
