"""`cryptobot check` against a real store: each check can fail, and says why."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptobot_core import services
from cryptobot_core.deploy_check import Target, run_checks
from cryptobot_core.settings import Settings
from cryptobot_core.store import Store
from tests.core.stream.conftest import make_candle
from tests.core.test_history import candle

NOW = datetime(2026, 3, 20, 12, 0, 30, tzinfo=UTC)
TODAY_MS = int(datetime(2026, 3, 20, tzinfo=UTC).timestamp() * 1000)


def test_store_checks_report_per_symbol_and_a_writable_reader_fails(
    settings: Settings, store: Store
) -> None:
    settings = settings.model_copy(update={"symbols": ["BTCUSDT", "ETHUSDT"]})
    yesterday = TODAY_MS - 86_400_000
    store.history().insert_missing(candle("BTCUSDT", yesterday + i * 900_000) for i in range(96))
    store.history().insert_missing(  # one candle short
        candle("ETHUSDT", yesterday + i * 900_000) for i in range(95)
    )
    store.stream.upsert([make_candle("BTCUSDT", TODAY_MS + 11 * 3_600_000, closed=False)])
    closed = f"http://127.0.0.1:{services.free_port()}"
    target = Target(closed, closed, settings, timeout_s=1.0, now=lambda: NOW)
    started = time.monotonic()
    results = {r.name: r for r in run_checks(target)}
    assert time.monotonic() - started < 30
    assert not any(r.ok for r in results.values()), results
    history = results["yesterday's history (15m)"].detail
    assert history == "2026-03-19: BTCUSDT 96 of 96 candles, ETHUSDT 95 of 96 candles"
    live = results["live minutes (newest within 120 s)"].detail
    assert live == "BTCUSDT newest minute opened 3630 s ago, ETHUSDT no minute stored"
    assert results["yesterday's features"].detail == "2026-03-19: BTCUSDT 0 rows, ETHUSDT 0 rows"
    # The test store has no authentication: a "read-only" user that may write is a failure.
    assert "went through" in results["store refuses a write from the read-only user"].detail
    assert "Connect" in results["API ready"].detail
    assert "Connect" in results["dashboard answers"].detail


def test_the_command_fails_cleanly_when_nothing_runs(tmp_path: Path) -> None:
    closed = str(services.free_port())
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CRYPTOBOT_EXCHANGE": "sim",
        "CRYPTOBOT_MONGO_URI": f"mongodb://127.0.0.1:{closed}/?directConnection=true",
        "CRYPTOBOT_API_URL": f"http://127.0.0.1:{closed}",
        "CRYPTOBOT_DASHBOARD_PORT": closed,
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cryptobot")), "check", "--timeout", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("FAIL") for line in lines) == 6, done.stdout
    assert "6 of 6 checks failed (in " in done.stdout
    assert "unreachable" in done.stdout and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60
