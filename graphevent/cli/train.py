"""`graphevent train` (being written in this session)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
