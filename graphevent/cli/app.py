"""Root ``graphevent`` app and the one place that maps library errors to exit code 2.

Each command group lives in its own module with a ``register(app)`` function. A command
parses options, loads config, calls one library function and renders what it returns.
"""

from __future__ import annotations

import os
import signal
import sys

import typer
from rich.markup import escape

from graphevent import __version__
from graphevent.cli import help as help_layout
from graphevent.cli.console import console, err_console
from graphevent.errors import GraphEventError, Interrupted, Stopped
from graphevent.utils.outfile import os_error_message

app = typer.Typer(
    name="graphevent",
    help=(
        "Classify particle-collision events from sparse detector images with graph neural networks.\n\n"
        "Typical flow:\n\n"
        "  graphevent preprocess qg.h5 --config ml4sci_qg_hdf5 --out ds/\n\n"
        "  graphevent train --config particlenet --data ds/ --out runs/pn\n\n"
        "  graphevent eval runs/pn --data ds/"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)


def _fold_long_help_words() -> None:
    """At 80 columns typer's option tables cut words longer than the help column (paths such
    as ``checkpoints/last.pt``) with an ellipsis; fold them onto the next line instead."""
    import typer.rich_utils as rich_utils
    from rich.text import Text

    original = getattr(rich_utils, "_get_parameter_help", None)
    if original is None:  # another typer version: leave its help as it is
        return

    def folded(*args, **kwargs):
        out = original(*args, **kwargs)
        for item in [out, *getattr(out, "renderables", [])]:  # a Columns of Texts
            if isinstance(item, Text):
                item.overflow = "fold"
        return out

    rich_utils._get_parameter_help = folded
    for name in ("highlighter", "negative_highlighter"):  # option-name columns (--no-freeze-encoder)
        original_hl = getattr(rich_utils, name, None)
        if original_hl is not None:
            setattr(rich_utils, name, _FoldingHighlighter(original_hl))


class _FoldingHighlighter:
    """A rich highlighter whose Texts fold instead of ending in an ellipsis."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, text):
        out = self.inner(text)
        out.overflow = "fold"
        return out


_fold_long_help_words()
help_layout.install()


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
    from graphevent.cli import export, models, predict, preprocess, probe, simulate, train

    for module in (preprocess, train, eval_cmd, predict, export, probe, models, simulate):
        module.register(app)
    for info in app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = reflow(info.callback.__doc__)


def reflow(doc: str) -> str:
    """A docstring as help text: the lines of each prose paragraph joined, so the terminal
    wraps them at its width (typer's rich mode keeps line breaks, which at 80 columns left
    half-empty lines); indented lines (examples) stay as they are."""
    import inspect

    out: list[str] = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.splitlines()
        if any(line.startswith(" ") for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


_register_commands()


#: what an interrupted command keeps, by command (default: :data:`KEPT_DEFAULT`)
KEPT = {
    "preprocess": "the chunks already written are kept: the same command resumes them (--overwrite starts again)",
    "train": "checkpoints written before are kept (train --resume continues); a run with none was removed",
}
KEPT_DEFAULT = "what it was writing was removed; files that existed before are unchanged"


def _command(argv: list[str]) -> str:
    """The command named in ``argv`` (the first word that is not an option), for messages."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words else ""


def _out_option(argv: list[str]) -> str | None:
    """``--out PATH`` as given in ``argv`` (for messages about a failed write)."""
    for i, a in enumerate(argv):
        if a in ("--out", "-o") and i + 1 < len(argv):
            return f"--out {argv[i + 1]}"
        if a.startswith("--out="):
            return f"--out {a[6:]}"
    return None


class _SignalsStop:
    """While the CLI runs: SIGINT and SIGTERM raise :class:`~graphevent.errors.Stopped` in this
    process (unless the signal is ignored, as for background jobs), so the command's clean-up
    runs; a forked child (a DataLoader worker) keeps the default action."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> None:
        self.pid = os.getpid()
        self.old = {}
        for sig in self.SIGNALS:
            old = signal.getsignal(sig)
            if old is not signal.SIG_IGN:
                self.old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if os.getpid() != self.pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


def _one_line(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turning GraphEventError into one line + exit 2.

    Usage errors (unknown option, bad option value) are click's: usage text and exit 2.
    A full disk, a read-only file system or a file-size limit met while writing is an input
    error too (one line naming the file, exit 2). SIGINT / SIGTERM print one line (what was
    stopped, what was kept) and exit 130 / 143.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        with _SignalsStop():
            app(args=argv, standalone_mode=True)
    except GraphEventError as exc:
        if debug_enabled():  # the traceback, and still the exit code of an input error
            import traceback

            traceback.print_exc()
            return 2
        return _one_line(str(exc))
    except (OSError, RuntimeError) as exc:
        error = os_error_message(exc, _out_option(argv))
        if error is None or debug_enabled():
            raise
        return _one_line(str(error))
    except Interrupted as exc:  # SIGINT/SIGTERM during training: checkpoint saved, exit 128 + signal
        err_console.print(f"[yellow]{escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        return exc.exit_code
    except Stopped as exc:
        command = _command(argv)
        err_console.print(f"[yellow]interrupted by {signal.Signals(exc.signum).name}: graphevent {command} stopped; "
                          f"{escape(KEPT.get(command, KEPT_DEFAULT))}[/]", highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:  # standalone mode always ends with sys.exit
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
