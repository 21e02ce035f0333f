"""``graphevent export``: a trained run as ONNX or TorchScript for experiment software."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import OverwriteOpt


def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `graphevent train`.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (model.onnx, model.pt).", show_default=False)],
    checkpoint: Annotated[str, typer.Option(help="Which checkpoint: best or last.")] = "best",
    input: Annotated[str | None, typer.Option(
        "--input", help="image: the raw images, preprocessing inside (default for image datasets); "
                        "points: the reader's points, padded, preprocessing inside (default for point inputs); "
                        "nodes: padded node arrays.", show_default=False)] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a trained model for ONNX Runtime or TorchScript, from the raw input to the scores.

    For runs trained on images the input is the image batch as the file holds it,
    images (B, H, W, C) float32, with the run's preprocessing (thresholds, scales, HCAL
    collapse, positions, node cap) and kNN inside the graph; for runs on point inputs, the
    points as the reader yields them, points (B, P, C + 2) float32 (channel values, eta,
    phi) and n_points (B,) int64. Both add an output bad_input (B,): 1 where the event's
    input held a NaN/Inf value. --input nodes exports the padded node form: features
    (B, N, F), positions (B, N, 2), mask (B, N). The file
    records its input layout, classes, output meanings, graphevent version and dataset
    id, and is checked against the eager model before it is moved into place. ONNX needs
    the \\[export] extra. Exportable models: particlenet, multitask (encoders masked_gt
    and/or edgeconv), resnet15.

    [bold]Examples[/]

      graphevent export runs/pn --format onnx --out pn.onnx

      graphevent export runs/pn --format torchscript --out pn.pt --input nodes
    """
    from graphevent.cli.console import console
    from graphevent.evaluate.export import export_run

    r = export_run(run_dir, fmt, out, checkpoint, overwrite, input)
    for name, desc in r.inputs.items():
        console.print(f"  input  {name}: {desc}", highlight=False)
    console.print(f"  output {', '.join(r.outputs)}", highlight=False)
    for name, desc in r.output_meaning.items():
        console.print(f"    {name}: {desc}", highlight=False)
    console.print(f"[green]{r.model} exported ({r.format}) to[/] {r.path}; max |exported - eager| = {r.max_abs_diff:.2g}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("export")(export_cmd)
