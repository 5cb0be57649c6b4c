"""`cryptobot stream ...`: reset the streaming data, run each stream loop standalone."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

import typer

from cryptobot_core.errors import ValidationError
from cryptobot_core.models import dt_to_ms
from cryptobot_core.settings import Settings, get_settings
from cryptobot_core.store import STREAMING_1M, open_store

app = typer.Typer(help="Live stream commands.", no_args_is_help=True)


def _setup(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT so loops finish their batch and exit cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger("cryptobot.stream").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@app.command("reset")
def reset(
    yes: bool = typer.Option(False, "--yes", "-y", help="Skip the confirmation (for scripts)."),
) -> None:
    """Delete every candle in streaming_data_1m and the recorded stream gaps."""
    settings = get_settings()
    target = f"{settings.database}.{STREAMING_1M}"
    if not yes and not typer.confirm(f"Delete all streaming candles in {target}?", default=False):
        typer.echo("aborted; nothing deleted")
        raise typer.Exit(1)
    with open_store(settings) as store:
        deleted = store.stream.delete_all()
        store.stream_gaps.delete_all()
    typer.echo(f"deleted {deleted} candles from {target}")


@app.command("produce")
def produce(run_id: str = typer.Option(None, help="Id written into the heartbeat.")) -> None:
    """Run the WebSocket → Kafka producer until SIGTERM/Ctrl-C."""
    from cryptobot_core.stream.producer import StreamProducer

    settings = get_settings()
    _setup(settings)
    stats = StreamProducer(settings, run_id=run_id).run(_stop_on_signals())
    typer.echo(
        f"producer stopped: {stats.messages} messages, {stats.acked} acknowledged, "
        f"{stats.spool_pending} spooled for re-send"
    )


@app.command("consume")
def consume(
    run_id: str = typer.Option(None, help="Id written into the heartbeat."),
    max_records: int = typer.Option(2000, min=1, max=100_000, help="Records per batch, at most."),
) -> None:
    """Run the Kafka → MongoDB consumer until SIGTERM/Ctrl-C."""
    from cryptobot_core.stream.consumer import StreamConsumer

    settings = get_settings()
    _setup(settings)
    consumer = StreamConsumer(settings, run_id=run_id, max_records=max_records)
    stats = consumer.run(_stop_on_signals())
    typer.echo(
        f"consumer stopped: {stats.messages} messages, {stats.candles_written} candles "
        f"written, {stats.dead_letters} dead letters"
    )


def _parse_since(since: str | None) -> int | None:
    if since is None:
        return None
    try:
        dt = datetime.fromisoformat(since)
    except ValueError:
        raise ValidationError(
            f"--since must be an ISO date or datetime like 2024-01-31 or 2024-01-31T10:00, got {since!r}"
        ) from None
    return dt_to_ms(dt if dt.tzinfo else dt.replace(tzinfo=UTC))


@app.command("repair")
def repair_cmd(
    since: str = typer.Option(None, help="Scan from this UTC time (default: start of today)."),
) -> None:
    """Fill missing closed minutes of streaming_data_1m from REST 1m klines."""
    from cryptobot_core.stream.repair import repair

    settings = get_settings()
    _setup(settings)
    report = repair(settings, since_ms=_parse_since(since))
    typer.echo(
        f"missing {report.total_missing} minutes, repaired {report.total_repaired}; "
        f"{report.gaps_resolved} recorded gaps resolved"
    )
