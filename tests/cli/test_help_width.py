"""Help texts and the models table read whole at 80 columns: nothing cut with an ellipsis."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = ["", "preprocess", "inspect", "train", "eval", "predict", "export", "models", "simulate qg"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_without_clipping(command):
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    args = [*command.split(), "--help"]
    out = subprocess.run([sys.executable, "-m", "graphevent.cli.app", *args], capture_output=True, text=True, env=env,
                         check=True).stdout
    lines = out.splitlines()
    assert lines and max(map(len, lines)) <= 80
    assert "…" not in out
    if command == "train":  # paragraphs reflowed: no line broken after one or two words
        assert "per epoch), checkpoints/last.pt and best.pt" in out.replace("\n ", " ").replace("  ", " ")


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
