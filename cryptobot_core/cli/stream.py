"""`cryptobot stream ...` (placeholder until its issue lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Live stream commands.", no_args_is_help=True)
