"""The ``cryptobot`` command: the edge where errors become messages, never tracebacks."""

from __future__ import annotations

import sys

import typer

from cryptobot_core.cli import backfill, check, export, simulate, stream, up
from cryptobot_core.errors import CryptobotError

app = typer.Typer(
    name="cryptobot",
    help="CryptoBot: Binance market data into MongoDB, orchestrated by Dagster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("up")(up.up)
app.command("simulate")(simulate.simulate)
app.command("backfill")(backfill.backfill)
app.command("check")(check.check)
app.command("export")(export.export_command)
app.add_typer(stream.app, name="stream")


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except CryptobotError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
