"""``graphevent simulate``: make simulated detector data (needs the ``[sim]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from graphevent.cli.options import WorkersOpt

# the options both simulators take
SimOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output file (.h5 or .parquet).", show_default=False)]
SimFormatOpt = Annotated[
    Literal["hdf5", "parquet"] | None,
    typer.Option("--format", "-f", help="hdf5 (ML4SCI layout) or parquet (E2E layout); default from the suffix.", show_default=False),
]
SimSeedOpt = Annotated[int, typer.Option(min=0, help="Master seed; the output does not depend on --workers.")]

simulate_app = typer.Typer(
    help="Simulate detector data in the layout of the public datasets (needs: pip install 'graphevent\\[sim]').",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def qg_cmd(
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="Number of jets (half quark, half gluon).", show_default=False)],
    out: SimOutOpt,
    fmt: SimFormatOpt = None,
    seed: SimSeedOpt = 0,
    workers: WorkersOpt = 1,
    particles: Annotated[bool, typer.Option("--particles/--no-particles", help="Also write <stem>_particles.npz (energyflow layout).")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    veto_scale: Annotated[
        float,
        typer.Option(min=0.0, help="Parton-level veto scale in GeV (0 = off): drops events whose partons cannot make a jet in the window; same distribution, ~3x faster (docs/simulation.md)."),
    ] = 30.0,
) -> None:
    """Quark and gluon jets from Pythia 8, rendered as 125x125 Tracks/ECAL/HCAL images.

    pp at 14 TeV: qg -> Z(nu nu) + (u,d,s) and q qbar -> Z(nu nu) + g; leading anti-kT R=0.4 jet with 500 < pT < 550 GeV, |y| < 1.7.

    A toy CMS-like detector renders the images (docs/simulation.md). Labels y: 0 quark, 1 gluon (ML4SCI); targets m0, pt.

    [bold]Examples[/]

      graphevent simulate qg --events 2000 --out qg.h5 --seed 1 --workers 2

      graphevent simulate qg -n 1000 -o qg.parquet --format parquet --no-particles

      # the shipped sample, as it was made:
      graphevent simulate qg -n 2000 -o sample.h5 --seed 1 --veto-scale 0
    """
    from graphevent.cli.console import console
    from graphevent.simulate import generate_qg
    from graphevent.simulate.pythia import QGSettings

    settings = QGSettings(veto_scale=veto_scale)
    summary = generate_qg(
        events, out, fmt=fmt, seed=seed, workers=workers, progress=True, overwrite=overwrite, particles=particles, settings=settings
    )
    console.print(summary_table(summary))


def summary_table(summary: dict[str, Any]):
    """A two-column rich table of what :func:`generate_qg` returned."""
    return two_columns("graphevent simulate qg", [
        ("images", f"{summary['out']} ({summary['format']}, {summary['bytes'] / 1e6:.2f} MB)"),
        ("particles", summary["particles"] or "-"),
        ("jets", f"{summary['n_events']} ({summary['n_quark']} quark y=0, {summary['n_gluon']} gluon y=1)"),
        ("seed / workers", f"{summary['seed']} / {summary['workers']}"),
        ("Pythia events", f"{summary['events_tried']} ({summary['events_vetoed']} dropped by the parton-level veto; acceptance {summary['acceptance']:.1%})"),
        ("time", f"{summary['wall_s']:.1f} s: {summary['jets_per_s']:.1f} jets/s; {summary['jets_per_s_per_core']:.1f} jets per CPU-second per worker"),
        ("versions", ", ".join(f"{k} {v}" for k, v in summary["versions"].items())),
    ])


def two_columns(title: str, rows: list[tuple[str, Any]]):
    """A rich table of ``(key, value)`` rows under ``title``, keys in bold, no header."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def events_cmd(
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="Number of events (a third per process).", show_default=False)],
    out: SimOutOpt,
    fmt: SimFormatOpt = None,
    seed: SimSeedOpt = 0,
    workers: WorkersOpt = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Whole collision events from Pythia 8, rendered as 170x360 Tracks/ECAL/HCAL barrel images.

    pp at 13 TeV, three processes in equal numbers: y=0 prompt diphoton, y=1 gg -> H -> gamma gamma (the signal), y=2 gamma + jet; both hard-process objects in |eta| < 1.44, pT > 20 GeV, mass 100-150 GeV.

    Images cover the barrel, |eta| < 1.479 and the full 2 pi in phi, at crystal granularity (docs/simulation.md). Targets m_gg (hard-process mass) and ht.

    [bold]Examples[/]

      graphevent simulate events -n 3000 -o events.h5 --seed 1 --workers 2

      graphevent preprocess events.h5 -c whole_event_hdf5 -o datasets/events
    """
    from graphevent.cli.console import console
    from graphevent.simulate.events import generate_events

    summary = generate_events(events, out, fmt=fmt, seed=seed, workers=workers, progress=True, overwrite=overwrite)
    console.print(events_summary_table(summary))


def events_summary_table(summary: dict[str, Any]):
    """A two-column rich table of what :func:`~graphevent.simulate.events.generate_events` returned."""
    classes = ", ".join(f"{summary['counts'][name]} {name} y={label}" for name, label in summary["labels"].items())
    return two_columns("graphevent simulate events", [
        ("images", f"{summary['out']} ({summary['format']}, {summary['bytes'] / 1e6:.2f} MB)"),
        ("events", f"{summary['n_events']} ({classes})"),
        ("seed / workers", f"{summary['seed']} / {summary['workers']}"),
        ("hard processes", f"{summary['events_tried']} generated (acceptance {summary['acceptance']:.1%})"),
        ("time", f"{summary['wall_s']:.1f} s: {summary['events_per_s']:.1f} events/s; {summary['events_per_s_per_core']:.1f} events per CPU-second per worker"),
        ("versions", ", ".join(f"{k} {v}" for k, v in summary["versions"].items())),
    ])


simulate_app.command("qg")(qg_cmd)
simulate_app.command("events")(events_cmd)


def register(app: typer.Typer) -> None:
    """Add ``graphevent simulate`` to the root app."""
    app.add_typer(simulate_app, name="simulate")
