"""Epoch summary lines: one line per epoch in logs, broken only between values on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from graphevent.train.engine import TrainCallbacks
from graphevent.train.progress import EpochLines, RichTrainProgress, epoch_line, epoch_lines

RECORD = {"epoch": 3, "step": 30, "train_loss": 0.51234, "val_loss": 0.53, "val_label_auc": 0.912345,
          "val_mass_mae": 14.3456, "val_mass_resolution": 0.0812, "events_per_s": 1234.4}
LINE = ("epoch 3 | train_loss 0.5123 | val_loss 0.53 | val_label_auc 0.9123 | val_mass_mae 14.35 | "
        "val_mass_resolution 0.0812 | 1,234 events/s")


def test_epoch_line():
    assert epoch_line(RECORD) == LINE
    assert epoch_lines(RECORD) == [LINE]


def test_epoch_lines_break_between_values():
    assert epoch_lines(RECORD, 60) == [
        "epoch 3 | train_loss 0.5123 | val_loss 0.53 |",
        "  val_label_auc 0.9123 | val_mass_mae 14.35 |",
        "  val_mass_resolution 0.0812 | 1,234 events/s",
    ]


def test_a_log_gets_one_line_per_epoch_at_any_width():
    out = io.StringIO()
    progress = RichTrainProgress(Console(file=out, width=80, force_terminal=False))
    for epoch in (1, 2):
        progress.on_epoch_start(epoch, 2, 4, 0)
        progress.on_batch(4, 0.5, 100.0)
        progress.on_epoch_end({**RECORD, "epoch": epoch})
    assert out.getvalue() == LINE.replace("epoch 3", "epoch 1") + "\n" + LINE.replace("epoch 3", "epoch 2") + "\n"


def test_a_terminal_gets_lines_broken_between_values():
    out = io.StringIO()
    progress = RichTrainProgress(Console(file=out, width=60, force_terminal=True, color_system=None))
    progress.on_epoch_end(RECORD)
    assert out.getvalue().splitlines() == epoch_lines(RECORD, 60)


def test_values_with_a_unit_say_it():
    from graphevent.config.tasks import TaskConfig, validation_units

    tasks = [TaskConfig("label", "classification"), TaskConfig("mass", "regression", "m0"),
             TaskConfig("frac", "regression", "charge_fraction")]
    units = validation_units(tasks)
    assert units == {"val_mass_mae": "GeV", "val_mass_rmse": "GeV", "val_mass_bias": "GeV"}
    record = {**RECORD, "val_frac_mae": 0.25}
    assert epoch_line(record, units) == (
        "epoch 3 | train_loss 0.5123 | val_loss 0.53 | val_label_auc 0.9123 | val_mass_mae 14.35 GeV | "
        "val_mass_resolution 0.0812 | val_frac_mae 0.25 | 1,234 events/s")


def test_summary_table_gives_the_unit_of_the_monitored_metric():
    from pathlib import Path

    from graphevent.train.run import TrainResult, summary_table

    result = TrainResult(Path("runs/r"), 1, "cpu", epochs=[{**RECORD, "epoch": 1}],
                         summary={"monitor": "val_mass_mae", "best": 14.3456, "best_epoch": 1},
                         units={"val_mass_mae": "GeV"})
    out = io.StringIO()
    Console(file=out, width=120).print(summary_table(result))
    text = out.getvalue()
    assert "val_mass_mae [GeV]" in text
    assert "best val_mass_mae = 14.35 GeV at epoch 1 (checkpoints/best.pt)" in text


def test_a_note_is_one_line_on_either_display_and_nothing_by_default(capsys):
    text = "train.encoder_layer_decay 0.75 -> 1 (off): 1,018 labelled training events, " + "x" * 120
    out = io.StringIO()
    RichTrainProgress(Console(file=out, width=60, force_terminal=True, color_system=None)).on_note(text)
    assert out.getvalue() == f"note: {text}\n"  # soft-wrapped by the terminal, never broken
    EpochLines().on_note(text)
    TrainCallbacks().on_note(text)  # the library's default hooks print nothing
    assert capsys.readouterr().out == f"note: {text}\n"
