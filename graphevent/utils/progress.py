"""Progress reporting that library code can drive without printing itself.

Library functions take a ``progress`` object with ``start(total, description)``,
``advance(n)`` and ``stop()``; the CLI passes :class:`RichProgress`, tests and quiet runs
pass :class:`NullProgress` (the default).
"""

from __future__ import annotations

import time


class NullProgress:
    """Reports nothing."""

    def start(self, total: int, description: str = "") -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress(NullProgress):
    """A rich progress bar with items/s and ETA on stderr.

    Args:
        unit: what is counted (shown as ``<unit>/s``).
        console: a ``rich.console.Console``; stderr if omitted.
    """

    def __init__(self, unit: str = "events", console=None) -> None:
        self.unit = unit
        self.console = console

    def start(self, total: int, description: str = "") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._t0 = time.perf_counter()
        self._done = 0
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console or Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, rate="")

    def advance(self, n: int = 1) -> None:
        self._done += n
        dt = max(time.perf_counter() - self._t0, 1e-9)
        self._bar.update(self._task, advance=n, rate=f"{self._done / dt:,.0f} {self.unit}/s")

    def stop(self) -> None:
        self._bar.stop()
