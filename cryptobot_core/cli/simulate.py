"""`cryptobot simulate`: run the offline Binance simulator in the foreground."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from cryptobot_core.errors import ConfigError
from cryptobot_core.settings import get_settings
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer


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
) -> None:
    """Serve a deterministic Binance-compatible REST + WebSocket API until Ctrl-C."""
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
    server = SimulatorServer(SimConfig(seed=seed, clock=clock), host=host, port=port).start()
    typer.echo(
        f"Binance simulator (seed {seed}, speed {speed}x) on {server.url}  ws: {server.ws_url}"
    )
    typer.echo("Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
