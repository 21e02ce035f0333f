"""``graphevent preprocess`` and ``graphevent inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import ConfigOpt, OutOpt, OverwriteOpt, SetOpt, WorkersOpt


def preprocess_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Raw input files (HDF5, parquet, ROOT, .npz).", show_default=False)],
    config: ConfigOpt,
    out: OutOpt,
    workers: WorkersOpt = 1,
    limit: Annotated[int | None, typer.Option(help="Read at most N events in total (in input order).", show_default=False)] = None,
    overwrite: OverwriteOpt = False,
    manifest: Annotated[Path | None, typer.Option(help="Check inputs against a data manifest (data_manifests/*.yaml).", show_default=False)] = None,
    summary: Annotated[bool, typer.Option("--summary/--no-summary", help="Print the dataset summary table at the end.")] = True,
    set_: SetOpt = None,
) -> None:
    """Turn raw detector data into a sharded graph dataset (point clouds + kNN graphs).

    Nonzero pixels above per-channel thresholds become nodes with (eta, phi) positions;
    each event gets a kNN graph; events are split train/val/test by hashing their id.
    Rerunning the same command after an interruption resumes where it stopped.

    [bold]Examples[/]

      graphevent preprocess qg.h5 -c ml4sci_qg_hdf5 -o datasets/qg --workers 2

      graphevent preprocess run0.parquet run1.parquet -c e2e_qg_parquet \\
          -o datasets/e2e --limit 10000

      graphevent preprocess qg.h5 -c ml4sci_qg_hdf5 -o ds --set graph.k=8 \\
          --set graph.node_mode=per_channel
    """
    from graphevent.cli.console import console
    from graphevent.config.data import load_data_config
    from graphevent.data.inspect import dataset_summary, summary_tables
    from graphevent.data.preprocess import preprocess
    from graphevent.utils.progress import RichProgress

    cfg = load_data_config(config, set_ or [])
    preprocess(inputs, cfg, out, workers=workers, limit=limit, overwrite=overwrite, data_manifest=manifest, progress=RichProgress("events"))
    if summary:
        console.print(summary_tables(dataset_summary(out)))
    console.print(f"[green]dataset written to[/] {out}")


def inspect_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `graphevent preprocess`.", show_default=False)],
) -> None:
    """Print a dataset's summary: events per split and class, nodes and edges per event, skipped events.

    [bold]Example[/]

      graphevent inspect datasets/qg
    """
    from graphevent.cli.console import console
    from graphevent.data.inspect import dataset_summary, summary_tables

    console.print(summary_tables(dataset_summary(dataset)))


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess_cmd)
    app.command("inspect")(inspect_cmd)
