"""`cryptobot export`: stored candles to CSV or Parquet files, one per symbol and UTC month."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange.exchange_info import normalize_symbol
from cryptobot_core.export import FORMATS, Format, export
from cryptobot_core.models import dt_to_ms
from cryptobot_core.query import MarketQuery, parse_interval, parse_time
from cryptobot_core.query.params import served_intervals
from cryptobot_core.settings import get_settings
from cryptobot_core.store import open_store
from cryptobot_core.universe import current_symbols


def export_command(
    start: str = typer.Option(
        ..., "--start", help="First open time, inclusive: ISO-8601 (UTC) or epoch ms."
    ),
    end: str | None = typer.Option(
        None, "--end", help="End, exclusive: ISO-8601 (UTC) or epoch ms (default: now)."
    ),
    symbols: str | None = typer.Option(
        None, "--symbols", help="Comma-separated symbols (default: CRYPTOBOT_SYMBOLS)."
    ),
    interval: str = typer.Option(
        "15m",
        "--interval",
        help="Any interval the API serves: 1m, 3m, 5m, 15m, 30m, 1h ... 1d, 3d, 1w.",
    ),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    out: Path = typer.Option(Path("export"), "--out", help="Folder to write into."),
) -> None:
    """Write stored closed candles to files, one per symbol and UTC month (exact decimals)."""
    if fmt not in FORMATS:
        raise ValidationError(f"invalid --format {fmt!r}; allowed: {', '.join(FORMATS)}")
    settings = get_settings()
    parsed = parse_interval(interval, served_intervals(settings.history_intervals))
    start_ms = parse_time(start, "--start")
    end_ms = parse_time(end, "--end") or dt_to_ms(datetime.now(UTC))
    assert start_ms is not None  # a required option
    if start_ms >= end_ms:
        raise ValidationError("--start must be before --end (the end is exclusive)")
    with open_store(settings.read_only()) as store:
        raw = symbols.split(",") if symbols else current_symbols(settings, store)
        wanted = [normalize_symbol(s.strip()) for s in raw if s.strip()]
        query = MarketQuery.for_settings(store, settings)
        files = export(query, wanted, parsed, start_ms, end_ms, _format(fmt), out)
    for f in files:
        typer.echo(f"{f.path}  {f.rows} candles")
    typer.echo(f"{len(files)} files, {sum(f.rows for f in files)} candles in {out}")


def _format(value: str) -> Format:
    return "csv" if value == "csv" else "parquet"
