"""`cryptobot up`: start and supervise the local stack until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cryptobot_core import launcher
from cryptobot_core.launcher.stackenv import STACK_ENV
from cryptobot_core.settings import Settings, load_settings


def _configure_logging(settings: Settings) -> Path:
    log_dir = settings.data_dir.expanduser().resolve() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "launcher.log"
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler()
    stream.setFormatter(fmt)
    file = logging.FileHandler(path)
    file.setFormatter(fmt)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in (stream, file):
        root.addHandler(handler)
    # Library chatter (httpx requests, pymongo) would drown the launcher's own lines.
    for noisy in ("httpx", "httpcore", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def _print_ready(settings: Settings, endpoints: list[launcher.Endpoint]) -> None:
    exchange = "built-in simulator" if settings.simulated else "Binance"
    typer.secho(
        f"\nCryptoBot is up (exchange: {exchange}, database: {settings.database})",
        fg=typer.colors.GREEN,
        bold=True,
    )
    if settings.exchange_fallback_reason:
        typer.secho(
            f"  Binance was not reachable, so the simulator is used: "
            f"{settings.exchange_fallback_reason}",
            fg=typer.colors.YELLOW,
        )
    width = max(len(e.title) for e in endpoints) if endpoints else 0
    for endpoint in endpoints:
        typer.echo(f"  {endpoint.title.ljust(width)}  {endpoint.url}")
    typer.echo(
        f"Commands in other terminals (cryptobot backfill, stream ...) use this stack; its "
        f"settings and store URIs with credentials are in {settings.data_dir / STACK_ENV}."
    )
    typer.echo(f"Logs: {settings.data_dir / 'logs'}/<service>.log. Press Ctrl-C to stop.\n")


def up(
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help=f"Do not start this service (repeatable): {', '.join(launcher.SERVICE_NAMES)}.",
        ),
    ] = None,
    reset_credentials: Annotated[
        bool,
        typer.Option(
            "--reset-credentials",
            help="Give the embedded store's users new passwords (keeps the data); for lost "
            "files in <data_dir>/secrets/.",
        ),
    ] = False,
) -> None:
    """Start the store, broker, exchange simulator, Dagster, API and dashboard; Ctrl-C stops all."""
    settings = load_settings()
    _configure_logging(settings)
    launcher.run(
        settings, skip=skip or (), reset_credentials=reset_credentials, on_ready=_print_ready
    )
    typer.echo("CryptoBot stopped.")
