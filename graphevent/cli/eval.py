"""``graphevent eval``: metric tables, comparisons, plots and predictions of trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import OverwriteOpt
from graphevent.evaluate.options import EvalOptions

_DEFAULT = EvalOptions()  # the defaults live once, in EvalOptions (no torch imported)


def eval_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories written by `graphevent train` (several: one comparison).", show_default=False)],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Dataset directory written by `graphevent preprocess`. Default: the one the runs were trained on (RUN_DIR/dataset.json).", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Dataset split to evaluate: train, val or test.")] = _DEFAULT.split,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory. Default: RUN_DIR/eval-SPLIT for one run, ./eval-SPLIT for several.", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(help="Which checkpoint: best or last.")] = _DEFAULT.checkpoint,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals (0: none).")] = _DEFAULT.bootstrap,
    signal: Annotated[str | None, typer.Option(help="Signal class, name or index (default: class index 1).", show_default=False)] = _DEFAULT.signal,
    explain: Annotated[bool, typer.Option("--explain", help="Also draw attention, saliency, reconstructions and embedding PCA.")] = _DEFAULT.explain,
    explain_events: Annotated[int, typer.Option(help="Events per class in the --explain figures.")] = _DEFAULT.explain_events,
    fmt: Annotated[str, typer.Option("--format", help="Predictions file format: parquet or root.")] = _DEFAULT.format,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (under torchrun: one GPU per process).")] = _DEFAULT.device,
    batch_size: Annotated[int, typer.Option(help="Events per inference batch.")] = _DEFAULT.batch_size,
    loader_workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = _DEFAULT.num_workers,
    max_events: Annotated[int | None, typer.Option(help="Evaluate only the first N events of the split.", show_default=False)] = _DEFAULT.max_events,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (and of masking in masked models).")] = _DEFAULT.seed,
    overwrite: OverwriteOpt = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Evaluate trained runs: metrics with 95% bootstrap intervals, plots and per-event predictions.

    Writes metrics.json (schema: docs/metrics_schema.md), metrics.md, metrics.csv,
    predictions-RUN.parquet, roc-TASK.png (runs overlaid), scores-, response- and
    training- plots per run, and with --explain explain.md + explain/*.png.
    Binary tasks: signal = class index 1 unless --signal; background rejection 1/εB at
    signal efficiency εS = 0.3 and 0.5, εB interpolated linearly on the ROC (∞ when no
    background passes the cut). Three or more classes: per-class and macro one-vs-rest AUC,
    and 1/εB of each other class against the signal, scored p_s / (p_s + p_b).
    Several GPUs: torchrun --nproc_per_node N -m graphevent.cli.app eval ... (rank 0 writes).

    [bold]Examples[/]

      graphevent eval runs/pn

      graphevent eval runs/scratch runs/finetuned --out eval-cmp --explain

      graphevent eval runs/pn --data datasets/qg --split val --checkpoint last \\
          --bootstrap 1000 --format root
    """
    from graphevent.cli.console import console
    from graphevent.evaluate import check_run_dirs, evaluate, recorded_dataset
    from graphevent.utils.progress import NullProgress, RichProgress

    options = EvalOptions(
        split=split, checkpoint=checkpoint, bootstrap=bootstrap, signal=signal, explain=explain,
        explain_events=explain_events, format=fmt, device=device, batch_size=batch_size,
        num_workers=loader_workers, max_events=max_events, seed=seed, overwrite=overwrite,
    )
    if data is None:
        check_run_dirs(run_dirs, options)
        data = recorded_dataset(run_dirs)
        console.print(f"dataset: {data} (recorded by the run{'s' if len(run_dirs) > 1 else ''})", highlight=False, soft_wrap=True)
    result = evaluate(run_dirs, data, options, out, progress=RichProgress("events") if progress else NullProgress())
    if not result.is_main:
        return
    console.print(result.table())
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"[green]{len(result.files)} files written to[/] {result.out_dir}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("eval")(eval_cmd)
