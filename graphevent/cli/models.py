"""``graphevent models``: the registered models and their parameter counts."""

from __future__ import annotations

import typer

from graphevent.cli.options import DataDirOpt


def models(data: DataDirOpt = None) -> None:
    """List the registered models with their parameter counts.

    Counts are for each model's default settings and default tasks, with input sizes from --data (its manifest.json).
    Without --data: 3 channel features (tracks, ecal, hcal), 2 classes, regression targets m0 and pt.
    """
    from rich.table import Table

    from graphevent.cli.app import console
    from graphevent.data.info import DatasetInfo
    from graphevent.nn.registry import default_info, model_summaries

    info = DatasetInfo.from_dir(data) if data is not None else default_info()
    rows = model_summaries(info)
    source = str(data) if data is not None else "default (3 features, 2 classes, targets m0, pt)"
    table = Table(title=f"Registered models — inputs: {source}", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("parameters", justify="right")
    table.add_column("stages")
    table.add_column("encoders")
    table.add_column("description")
    for r in rows:
        stages = ", ".join(s for s, ok in (("pretrain", r["pretrain"]), ("finetune/supervised", r["tasks"])) if ok)
        table.add_row(r["name"], f"{r['parameters']:,}", stages, ", ".join(r["encoders"]) or "-", r["description"])
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("models")(models)
