"""`cryptobot up` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def up() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
