"""`cryptobot simulate`: run the offline Binance simulator in the foreground."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from cryptobot_core.errors import ConfigError
from cryptobot_core.settings import get_settings
from cryptobot_core.simulator import (
    SimClock,
    SimConfig,
    SimulatorServer,
    default_symbols,
    generated_symbols,
)


def simulate(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default: CRYPTOBOT_SIM_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: CRYPTOBOT_SIM_PORT)")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the market data (default: CRYPTOBOT_SIM_SEED)")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per real second; 1 = real time (default: CRYPTOBOT_SIM_SPEED)"
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="Simulated start time (ISO 8601, UTC) when speed != 1 (default: now)"),
    ] = None,
    trading_symbols: Annotated[
        int | None,
        typer.Option(
            help="List this many TRADING symbols (generated after the 20 defaults, plus 1 in 20 "
            "in other statuses) instead of the default 20 + LUNAUSDT; e.g. 1500"
        ),
    ] = None,
    update_interval: Annotated[
        float,
        typer.Option(help="Seconds between two open-candle updates of a kline stream"),
    ] = 2.0,
    archive_delay: Annotated[
        float,
        typer.Option(help="Hours after its period ends before an archive file appears"),
    ] = 6.0,
) -> None:
    """Serve a deterministic Binance-compatible REST + WebSocket + archive API until Ctrl-C."""
    from datetime import UTC, datetime

    settings = get_settings()
    host = host or settings.sim_host
    port = settings.sim_port if port is None else port
    seed = settings.sim_seed if seed is None else seed
    speed = settings.sim_speed if speed is None else speed
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    if not 0 < speed <= 100_000:
        raise ConfigError(f"--speed must be > 0 and <= 100000, got {speed}")
    if trading_symbols is not None and not 1 <= trading_symbols <= 20_000:
        raise ConfigError(f"--trading-symbols must be 1..20000, got {trading_symbols}")
    if not 0.5 <= update_interval <= 3600:
        raise ConfigError(f"--update-interval must be 0.5..3600 seconds, got {update_interval}")
    if not 0 <= archive_delay <= 24 * 30:
        raise ConfigError(f"--archive-delay must be 0..720 hours, got {archive_delay}")
    start_ms = int(datetime.now(UTC).timestamp() * 1000)
    if start is not None:
        try:
            dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"--start must be an ISO 8601 time like 2026-01-15T12:00:00Z, got {start!r}"
            ) from None
        start_ms = int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    clock = (
        SimClock.real() if speed == 1 and start is None else SimClock.accelerated(start_ms, speed)
    )
    config = SimConfig(
        seed=seed,
        symbols=default_symbols()
        if trading_symbols is None
        else generated_symbols(trading_symbols, seed),
        clock=clock,
        ws_update_interval_s=update_interval,
        archive_delay_s=archive_delay * 3600,
    )
    server = SimulatorServer(config, host=host, port=port).start()
    typer.echo(
        f"Binance simulator (seed {seed}, speed {speed}x, {len(config.symbols)} symbols) on "
        f"{server.url}  ws: {server.ws_url}  archives: {server.url}/data/spot/..."
    )
    typer.echo("Press Ctrl-C to stop.")
    stopping = threading.Event()
    # Ctrl-C and SIGTERM (a supervisor, `kill`) both stop it cleanly. Both are handled here
    # explicitly, as `cryptobot up` and the stream commands do: a process started with
    # SIGINT ignored (a background command of a shell without job control) would otherwise
    # never hear the Ctrl-C it was promised.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        stopping.wait()
    finally:
        server.stop()
