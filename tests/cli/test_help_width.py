"""Help texts and the models table read whole at 80 columns: nothing cut with an ellipsis."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from graphevent.cli.app import app


def _commands(command, prefix=()):
    """Every command under ``command`` (a click command), as the words that name it (``("simulate", "qg")``)."""
    yield prefix, command
    for name, cmd in getattr(command, "commands", {}).items():
        yield from _commands(cmd, (*prefix, name))


def _root():
    import typer.main

    return typer.main.get_command(app)


COMMANDS = {" ".join(words): cmd for words, cmd in _commands(_root())}


def test_every_command_is_checked():
    assert {"", "preprocess", "inspect", "train", "eval", "predict", "export", "probe", "models", "simulate",
            "simulate qg"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_fits_80_columns_without_clipping(command):
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    args = [*command.split(), "--help"]
    out = subprocess.run([sys.executable, "-m", "graphevent.cli.app", *args], capture_output=True, text=True, env=env,
                         check=True).stdout
    lines = out.splitlines()
    assert lines and max(map(len, lines)) <= 80
    assert "…" not in out
    assert "<bool>" not in out and "list[" not in out  # flags show no type; a list shows its element type
    cells = [line.strip("│ ") for line in lines]
    for param in COMMANDS[command].params:  # every option name whole on one line (no "--no-freeze-enco der")
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--"):
                assert any(re.search(rf"(^|[ ,*]){re.escape(name)}(,|\s|$)", cell) for cell in cells), name
    for line in (COMMANDS[command].help or "").splitlines():  # example command lines are never wrapped
        if line.strip().startswith("graphevent "):
            assert line.strip() in out, line
    if command == "train":  # paragraphs reflowed: no line broken after one or two words
        flat = out.replace("\n ", " ").replace("  ", " ")
        assert "per epoch), checkpoints/last.pt and best.pt" in flat
        assert "Continue the run in --out from checkpoints/last.pt." in " ".join(c.split("  ")[-1].strip() for c in cells)


def test_option_types_and_ranges_are_short():
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    out = subprocess.run([sys.executable, "-m", "graphevent.cli.app", "train", "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    rows = [line.strip("│ ") for line in out.splitlines()]
    assert any(re.fullmatch(r"--init-from +<path> +Pretraining run \(or checkpoint\).*", r) for r in rows)
    assert any(re.fullmatch(r"--freeze-encoder +Keep the encoder weights fixed;.*", r) for r in rows)
    assert any(re.fullmatch(r"--no-freeze-encoder +the heads \(default: train\.freeze_encoder\)\.", r) for r in rows)
    out = subprocess.run([sys.executable, "-m", "graphevent.cli.app", "preprocess", "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert any(re.fullmatch(r"--workers, -j +<int ≥1> +Worker processes\. \[default: 1\]", line.strip("│ "))
               for line in out.splitlines())


def test_reflow_joins_prose_and_keeps_examples():
    from graphevent.cli.app import reflow

    doc = """Summary line.

    Long prose
    continues here.

    [bold]Examples[/]

      graphevent x --a
      graphevent y
    """
    assert reflow(doc) == "Summary line.\n\nLong prose continues here.\n\n[bold]Examples[/]\n\n  graphevent x --a\n  graphevent y"
