"""Option definitions shared by several commands (one definition each, reused via Annotated)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Data config: a YAML file or a shipped name (ml4sci_qg_hdf5; see graphevent/configs/data/).", show_default=False)]
DataDirOpt = Annotated[Path, typer.Option("--data", "-d", help="Dataset directory written by `graphevent preprocess`.", show_default=False)]
ResumeDataDirOpt = Annotated[Path | None, typer.Option("--data", "-d", help="Dataset directory written by `graphevent preprocess` (with --resume: the run's own by default).", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory.", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace what graphevent wrote there before: in a directory only the files listed in its .graphevent.json, a file only if it carries the signature of this command's output; anything else is refused.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config value: --set graph.k=8 (repeatable).", show_default=False)]
