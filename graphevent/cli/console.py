"""The consoles every command prints to: ``console`` (stdout: tables, results) and
``err_console`` (stderr: the one-line errors and interruptions of :mod:`graphevent.cli.app`).

Their own module, below ``app`` and the command modules, so commands print without importing
the root app that imports them.
"""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
