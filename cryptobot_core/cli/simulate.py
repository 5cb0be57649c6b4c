"""`cryptobot simulate` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def simulate() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
