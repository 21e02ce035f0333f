"""``graphevent probe``: linear, kNN and observable probes of frozen embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import DataDirOpt, OverwriteOpt


def probe_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories written by `graphevent train` (pretraining or fine-tuned).", show_default=False)],
    data: DataDirOpt,
    split: Annotated[str, typer.Option(help="Split the probes are scored on (they are fitted on train).")] = "test",
    label_fraction: Annotated[float, typer.Option(help="Fraction of the training pool whose labels fit the linear and kNN probes.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the labelled subset and of --random-init.")] = 0,
    random_init: Annotated[bool, typer.Option("--random-init", help="Also probe each run's model randomly initialised (the baseline).")] = False,
    pool_events: Annotated[int, typer.Option(min=0, help="Training events embedded (0: all).")] = 5000,
    max_events: Annotated[int, typer.Option(min=0, help="Events of --split scored (0: all).")] = 0,
    k: Annotated[int, typer.Option(min=1, help="Neighbours of the kNN probe.")] = 20,
    checkpoint: Annotated[str, typer.Option(help="Which checkpoint: best or last.")] = "best",
    test_data: Annotated[Path | None, typer.Option(help="Score on this dataset's --split instead of --data's (e.g. independently simulated events).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the rows to this JSON file.", show_default=False)] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Probe what encoders learned: frozen pooled embeddings -> logistic regression and kNN
    (AUC), and ridge fits of jet observables (R^2 of multiplicity, girth, pT_D, mass).

    [bold]Examples[/]

      graphevent probe runs/masked_gt_pre --data datasets/qg --random-init \\
        --label-fraction 0.1

      graphevent probe runs/pre runs/ft --data datasets/qg --out probes.json
    """
    from graphevent.cli.console import console
    from graphevent.evaluate.probes import ProbeOptions, probe_runs

    options = ProbeOptions(
        split=split, label_fraction=label_fraction, seed=seed, random_init=random_init,
        pool_events=pool_events, max_events=max_events, k=k, checkpoint=checkpoint,
    )
    result = probe_runs(run_dirs, data, options, out, overwrite, test_data)
    console.print(result.table())
    if result.out is not None:
        console.print(f"[green]probes written to[/] {result.out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("probe")(probe_cmd)
