"""The ``graphevent`` command line (typer + rich). See :mod:`graphevent.cli.app`."""
