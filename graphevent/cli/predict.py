"""``graphevent predict``: score new (unlabelled) raw files with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import OverwriteOpt
from graphevent.evaluate.options import DEFAULT_BATCH_SIZE


def predict_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `graphevent train`.", show_default=False)],
    inputs: Annotated[list[Path], typer.Option("--input", "-i", help="Raw input file (repeatable; any format the data config reads).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: PRED.parquet or PRED.root.", show_default=False)],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Data config to read the inputs with (default: the one the run's dataset was made with); its preprocessing must match the run's.", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(help="Which checkpoint: best or last.")] = "best",
    batch_size: Annotated[int, typer.Option(help="Events per inference batch.")] = DEFAULT_BATCH_SIZE,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of masking in masked models.")] = 0,
    overwrite: OverwriteOpt = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Read the inputs otherwise: --set reader.image_key=X_jets or --set chunk_size=256 (repeatable; only reader.* keys and chunk_size).", show_default=False)] = None,
) -> None:
    """Score every event of raw files: the run's own preprocessing, then its model.

    Writes one row per input event: event_id (running number over the inputs), source,
    source_file, index (the event in its file), n_nodes, label (-1 without labels), true_<target> (NaN when absent), score_<class>,
    pred_<task> or recon_error_<feature> (columns: docs/api.md). Events are streamed in
    chunks, so memory stays flat; the file appears only once complete.

    [bold]Examples[/]

      graphevent predict runs/pn --input new.h5 --out pred.parquet

      graphevent predict runs/pn -i new.h5 -o p.parquet --set reader.image_key=X

      graphevent predict runs/pn -i run1.root -i run2.root -c root_image \\
          -o pred.root
    """
    from graphevent.cli.console import console
    from graphevent.evaluate.predict import PredictOptions, predict_files
    from graphevent.utils.progress import NullProgress, RichProgress

    options = PredictOptions(config=config, checkpoint=checkpoint, batch_size=batch_size, device=device, seed=seed,
                             overwrite=overwrite, overrides=tuple(set_ or ()))
    result = predict_files(run_dir, inputs, out, options, RichProgress("events") if progress else NullProgress())
    if result.unlabelled:
        console.print(f"no labels in {', '.join(result.unlabelled)} (label column -1)", highlight=False)
    for name, keys in result.missing_targets.items():
        console.print(f"no {', '.join(keys)} in {name} (true_ columns NaN)", highlight=False)
    if result.empty:
        console.print(f"{result.empty} events without nodes (outputs NaN)", highlight=False)
    console.print(f"[green]{result.events} events scored, written to[/] {result.out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("predict")(predict_cmd)
