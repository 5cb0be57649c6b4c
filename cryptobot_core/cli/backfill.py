"""`cryptobot backfill`: launch a history backfill through Dagster and follow it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cryptobot_core.dagster_client import BackfillStatus, DagsterClient, DagsterError
from cryptobot_core.errors import InvalidSymbolError, ValidationError
from cryptobot_core.exchange.exchange_info import SYMBOL_RE
from cryptobot_core.history import INTERVAL, klines_asset_name, plan_backfill
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import get_settings
from cryptobot_core.universe import configured_symbols

SYMBOLS_PARTITIONS = "symbols"
UNREACHABLE_GIVE_UP_S = 60.0


def _symbols(raw: str | None, default: list[str]) -> list[str]:
    if raw is None:
        return list(default)
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
    bad = [s for s in symbols if not SYMBOL_RE.match(s)]
    if bad or not symbols:
        raise ValidationError(
            f"invalid --symbols {raw!r}; use comma-separated Binance symbols like BTCUSDT,ETHUSDT"
        )
    return list(dict.fromkeys(symbols))


def _interval(raw: str, configured: list[Interval]) -> Interval:
    """The --interval asked for, among the configured history intervals."""
    names = ", ".join(i.value for i in configured)
    interval = Interval.parse(raw)
    if interval not in configured:
        raise ValidationError(
            f"--interval {interval.value} is not a history interval here (configured: {names}); "
            f"add it to CRYPTOBOT_HISTORY_INTERVALS (e.g. {names},{interval.value}) and restart "
            "Dagster, so its asset exists"
        )
    return interval


def backfill(
    days: int = typer.Option(
        ..., "--days", min=1, help="How many finished UTC days to load, ending yesterday."
    ),
    symbols: str | None = typer.Option(
        None, "--symbols", help="Comma-separated symbols (default: CRYPTOBOT_SYMBOLS)."
    ),
    interval: str = typer.Option(
        INTERVAL.value,
        "--interval",
        help="History interval, one of CRYPTOBOT_HISTORY_INTERVALS (default 15m).",
    ),
    dagster_url: str | None = typer.Option(
        None, "--dagster-url", help="Dagster webserver (default: CRYPTOBOT_DAGSTER_URL)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the backfill until it ends."),
    poll_s: float = typer.Option(1.0, "--poll", min=0.1, help="Seconds between status checks."),
) -> None:
    """Load history through Dagster (the runs show in its UI), with a progress bar."""
    from cryptobot_core.exchange import BinanceClient

    settings = get_settings()
    asset = klines_asset_name(_interval(interval, settings.history_intervals))
    wanted = _symbols(symbols, [] if symbols else configured_symbols(settings))
    plan = plan_backfill(
        wanted, days, today=datetime.now(UTC).date(), start_date=settings.start_date
    )
    # Refuse unknown symbols before Dagster sees them: a clear message, nothing launched.
    with BinanceClient.from_settings(settings) as exchange:
        _, bad = exchange.check_symbols(wanted)
    if bad:
        first = sorted(bad)[0]
        details = "; ".join(f"{s}: {r}" for s, r in sorted(bad.items()))
        raise InvalidSymbolError(first, f"not backfilled ({details})")
    keys = [f"{day.isoformat()}|{symbol}" for symbol, day in plan]
    with DagsterClient(dagster_url or settings.dagster_url) as dagster:
        dagster.add_dynamic_partitions(asset, SYMBOLS_PARTITIONS, wanted)
        backfill_id = dagster.launch_backfill(
            [asset],
            keys,
            title=f"cryptobot backfill --days {days} --interval {interval}",
            tags={"cryptobot/trigger": "cli"},
        )
        typer.echo(
            f"backfill {backfill_id}: {len(keys)} partitions of {asset} ({', '.join(wanted)}, "
            f"{plan[0][1]}..{plan[-1][1]}); watch it at {dagster.url}/runs/b/{backfill_id}"
        )
        if not wait:
            return
        status = _follow(dagster, backfill_id, asset, len(keys), poll_s)
    if not status.succeeded:
        typer.secho(
            f"backfill {backfill_id} ended {status.status}: {status.materialized} materialized, "
            f"{status.failed} failed; see the run logs in the Dagster UI, then re-run to fill "
            f"what is missing",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"backfill {backfill_id} done: {status.materialized} partitions materialized")


def _follow(
    dagster: DagsterClient, backfill_id: str, asset: str, total: int, poll_s: float
) -> BackfillStatus:
    """Poll the backfill and draw a progress bar until it ends."""
    columns = (
        TextColumn(f"[bold]{asset}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("backfill", total=total, state="REQUESTED")
        unreachable_since: float | None = None
        while True:
            try:
                status = dagster.backfill_status(backfill_id)
                unreachable_since = None
            except DagsterError as exc:
                # A webserver restart should not end a long watch, but an outage does.
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > UNREACHABLE_GIVE_UP_S:
                    raise DagsterError(
                        f"lost the Dagster webserver for {UNREACHABLE_GIVE_UP_S:.0f}s while "
                        f"following backfill {backfill_id} (it keeps running there): {exc}"
                    ) from exc
                time.sleep(poll_s)
                continue
            targeted = status.targeted or total
            progress.update(
                task,
                total=targeted,
                completed=status.materialized + status.failed,
                state=f"{status.status} failed={status.failed}",
            )
            if status.done:
                return status
            time.sleep(poll_s)
