"""``graphevent models``: the registered models, their parameter counts, and the registered encoders."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from graphevent.cli.options import DataDirOpt

SUMMARY = Path(__file__).resolve().parents[1] / "nn" / "models" / "summary.json"  # registry.SUMMARY_CACHE, read without torch


def models(data: DataDirOpt = None) -> None:
    """List the registered models with their parameter counts, and the registered encoders.

    Counts are for each model's default settings and default tasks, with input sizes from --data (its manifest.json).
    Without --data: 3 channel features (tracks, ecal, hcal), 2 classes, regression targets m0 and pt.
    """
    from rich.table import Table

    from graphevent.cli.console import console

    if data is None:  # the default tables are precomputed: no torch import, answers in a second
        summary = json.loads(SUMMARY.read_text())
        source = "3 features, 2 classes, targets m0, pt (default)"
    else:
        from graphevent.data.info import DatasetInfo
        from graphevent.nn.registry import registry_summary

        summary = registry_summary(DatasetInfo.from_dir(data))
        source = str(data)
    rows = summary["models"]
    table = Table(title=f"Registered models, inputs: {source}", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("stages", no_wrap=True)
    table.add_column("encoders")
    for r in rows:
        stages = ", ".join(s for s, ok in (("pretrain", r["pretrain"]), ("finetune, supervised", r["tasks"])) if ok)
        table.add_row(r["name"], f"{r['parameters']:,}", stages, ", ".join(r["encoders"]) or "-")
    console.print(table)
    for r in rows:  # descriptions below the table: they wrap at any width instead of squeezing its columns
        console.print(f"[bold]{r['name']}[/]: {r['description']}", highlight=False)
    encoders = Table(title="Registered encoders (multitask's encoders, contrastive's and foldingnet_ae's encoder)", title_justify="left")
    encoders.add_column("name", style="bold", no_wrap=True)
    encoders.add_column("own autoencoder", no_wrap=True)
    encoders.add_column("export")
    for r in summary["encoders"]:
        encoders.add_row(r["name"], r["autoencoder"] or "-", f"no: {r['not_exportable']}" if r["not_exportable"] else "yes")
    console.print(encoders)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("models")(models)
