"""`cryptobot backfill`: load history through Dagster runs and follow them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cryptobot_core.dagster_client import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    RUN_SUCCESS,
    RUN_TERMINAL,
    DagsterClient,
    DagsterError,
)
from cryptobot_core.errors import InvalidSymbolError, ValidationError
from cryptobot_core.exchange.exchange_info import SYMBOL_RE
from cryptobot_core.history import (
    INTERVAL,
    klines_asset_name,
    max_days_per_run,
    plan_backfill,
    plan_runs,
)
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import get_settings
from cryptobot_core.universe import configured_symbols

SYMBOLS_PARTITIONS = "symbols"
UNREACHABLE_GIVE_UP_S = 60.0
# Every run of one `cryptobot backfill` carries this tag, so the UI lists them together.
BATCH_TAG = "cryptobot/backfill"


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
    parsed = _interval(interval, settings.history_intervals)
    asset = klines_asset_name(parsed)
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
    runs = plan_runs(plan, max_days_per_run(parsed))
    batch = uuid.uuid4().hex[:8]
    with DagsterClient(dagster_url or settings.dagster_url) as dagster:
        dagster.add_dynamic_partitions(asset, SYMBOLS_PARTITIONS, wanted)
        # One run per symbol and range of days, started by the run queue within seconds;
        # an asset backfill would wait for the backfill daemon's 30-s ticks to start and
        # to end (docs/benchmarks/history.md).
        launched: dict[str, int] = {}
        for symbol, lo, hi in runs:
            tags = {
                "cryptobot/trigger": "cli",
                BATCH_TAG: batch,
                RANGE_START_TAG: f"{lo.isoformat()}|{symbol}",
                RANGE_END_TAG: f"{hi.isoformat()}|{symbol}",
            }
            launched[dagster.launch_run(asset, tags)] = (hi - lo).days + 1
        typer.echo(
            f"backfill {batch}: {len(plan)} partitions of {asset} ({', '.join(wanted)}, "
            f"{plan[0][1]}..{plan[-1][1]}) in {len(runs)} runs; watch them at "
            f"{dagster.url}/runs (tag {BATCH_TAG}={batch})"
        )
        if not wait:
            return
        materialized, failed = _follow(dagster, asset, launched, poll_s)
    if failed:
        typer.secho(
            f"backfill {batch} ended with {materialized} partitions materialized and {failed} "
            f"failed; see the run logs in the Dagster UI, then re-run to fill what is missing",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"backfill {batch} done: {materialized} partitions materialized")


def _follow(
    dagster: DagsterClient, asset: str, runs: dict[str, int], poll_s: float
) -> tuple[int, int]:
    """Poll the runs and draw a progress bar until all ended: (materialized, failed) days."""
    columns = (
        TextColumn(f"[bold]{asset}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    total = sum(runs.values())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("backfill", total=total, state="QUEUED")
        unreachable_since: float | None = None
        while True:
            try:
                statuses = dagster.run_statuses(list(runs))
                unreachable_since = None
            except DagsterError as exc:
                # A webserver restart should not end a long watch, but an outage does.
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > UNREACHABLE_GIVE_UP_S:
                    raise DagsterError(
                        f"lost the Dagster webserver for {UNREACHABLE_GIVE_UP_S:.0f}s while "
                        f"following the backfill's runs (they keep running there): {exc}"
                    ) from exc
                time.sleep(poll_s)
                continue
            done = {r: s for r, s in statuses.items() if s in RUN_TERMINAL}
            materialized = sum(runs[r] for r, s in done.items() if s == RUN_SUCCESS)
            failed = sum(runs[r] for r, s in done.items() if s != RUN_SUCCESS)
            running = len(runs) - len(done)
            progress.update(
                task,
                completed=materialized + failed,
                state=f"{running} runs going, failed={failed}",
            )
            if not running:
                return materialized, failed
            time.sleep(poll_s)
