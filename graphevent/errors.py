"""Exceptions that graphevent raises for problems with the user's input.

The CLI maps every :class:`GraphEventError` to a one-line message and exit code 2
(`graphevent.cli.app`). Anything else is a bug and keeps its traceback.
"""


class GraphEventError(Exception):
    """Base class: a problem the user can fix (bad file, bad config, bad option)."""


class ConfigError(GraphEventError):
    """A config file, key or value is invalid."""


class DataError(GraphEventError):
    """An input or dataset file is missing, corrupt, or does not match its config."""


class MissingKeyError(DataError):
    """An input file lacks a key (array, column, branch) the config names."""


class RunError(GraphEventError):
    """A run directory or checkpoint is missing or inconsistent."""


class DeviceError(GraphEventError):
    """The requested hardware or launcher setup is not available (e.g. --gpus 2 without GPUs)."""


class OutputError(GraphEventError):
    """An output directory cannot be used: not ours to replace, in use, a file or symlink, not writable."""


class Interrupted(Exception):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint (not an input error).

    The CLI prints the message and exits with ``128 + signal`` (130 for Ctrl-C, 143 for
    SIGTERM, e.g. SLURM pre-emption), as a shell does for a process killed by the signal.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class Stopped(BaseException):
    """SIGINT or SIGTERM outside a training loop: the command stops where it is.

    Raised by the CLI's signal handlers (a ``BaseException``, so no ``except Exception``
    swallows it); every ``with`` block and ``finally`` on the way out removes what the
    command was writing. The CLI prints one line and exits with ``128 + signal``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
