"""Root ``graphevent`` app and the one place that maps library errors to exit code 2.

Each command group lives in its own module with a ``register(app)`` function. A command
parses options, loads config, calls one library function and renders what it returns.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from graphevent import __version__
from graphevent.errors import GraphEventError

app = typer.Typer(
    name="graphevent",
    help=(
        "Classify particle-collision events from sparse detector images with graph neural networks.\n\n"
        "Typical flow:\n\n"
        "  graphevent preprocess qg.h5 --config configs/data/ml4sci_qg_hdf5.yaml --out ds/\n\n"
        "  graphevent train --config configs/experiments/particlenet.yaml --data ds/ --out runs/pn\n\n"
        "  graphevent eval runs/pn --data ds/"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)

console = Console()
err_console = Console(stderr=True)


def debug_enabled() -> bool:
    return os.environ.get("GRAPHEVENT_DEBUG", "").lower() in ("1", "true", "yes")


def _version(value: bool) -> None:
    if value:
        console.print(f"graphevent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (same as GRAPHEVENT_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    if debug:
        os.environ["GRAPHEVENT_DEBUG"] = "1"


def _register_commands() -> None:
    from graphevent.cli import eval as eval_cmd
    from graphevent.cli import models, preprocess, probe, simulate, train

    for module in (preprocess, train, eval_cmd, probe, models, simulate):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turning GraphEventError into one line + exit 2.

    Usage errors (unknown option, bad option value) are click's: usage text and exit 2.
    """
    try:
        app(args=argv, standalone_mode=True)
    except GraphEventError as exc:
        if debug_enabled():
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except SystemExit as exc:  # standalone mode always ends with sys.exit
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
