"""`cryptobot backfill` input checks: bad input is refused with a message, nothing launched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryptobot_core.cli import app
from cryptobot_core.services import free_port
from cryptobot_core.settings import get_settings
from cryptobot_core.simulator import SimulatorServer
from tests.assets.history.conftest import TODAY


@pytest.fixture
def cli_env(
    real_sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """CRYPTOBOT_* for the simulator, with a Dagster URL where nothing listens."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_") and not key.startswith("CRYPTOBOT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    env = {
        "CRYPTOBOT_EXCHANGE": "sim",
        "CRYPTOBOT_SIM_HOST": "127.0.0.1",
        "CRYPTOBOT_SIM_PORT": str(real_sim.port),
        "CRYPTOBOT_HISTORY_START_DATE": (TODAY - timedelta(days=5)).isoformat(),
        "CRYPTOBOT_DAGSTER_URL": f"http://127.0.0.1:{free_port()}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_unknown_symbol_is_refused_with_a_message_and_no_traceback(cli_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cryptobot_core.cli import main; main()",
            "backfill",
            "--days",
            "1",
            "--symbols",
            "BTCUSDT,NOPEUSDT",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **cli_env},
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "NOPEUSDT" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Refused before Dagster was asked: the unreachable webserver is never mentioned.
    assert "not reachable" not in proc.stderr


def test_days_beyond_the_start_date_are_refused_with_the_allowed_range(
    cli_env: dict[str, str],
) -> None:
    result = CliRunner().invoke(app, ["backfill", "--days", "9"])
    assert result.exit_code != 0
    assert "--days 9 reaches back" in str(result.exception)
    assert "use --days 5 or less" in str(result.exception)


def test_malformed_symbols_are_refused(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["backfill", "--days", "1", "--symbols", "btc-usdt"])
    assert result.exit_code != 0
    assert "invalid --symbols 'btc-usdt'" in str(result.exception)


def test_an_unreachable_dagster_is_named_in_the_error(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["backfill", "--days", "1"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "Dagster webserver at http://127.0.0.1:" in message and "not reachable" in message


def test_an_interval_that_is_not_kept_as_history_is_refused(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["backfill", "--days", "1", "--interval", "1h"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "--interval 1h is not a history interval here (configured: 15m)" in message
    assert "CRYPTOBOT_HISTORY_INTERVALS (e.g. 15m,1h)" in message
    result = CliRunner().invoke(app, ["backfill", "--days", "1", "--interval", "2x"])
    assert "invalid interval '2x'; allowed: 1s, 1m" in str(result.exception)


def test_a_backfill_runs_each_symbols_consecutive_days_together() -> None:
    from datetime import date

    from cryptobot_core.cli.backfill import plan_runs
    from cryptobot_core.history import max_days_per_run, plan_backfill
    from cryptobot_core.intervals import Interval

    today = date(2026, 3, 10)
    plan = plan_backfill(["BTCUSDT", "ETHUSDT"], 3, today=today, start_date=date(2026, 1, 1))
    first, last = date(2026, 3, 7), date(2026, 3, 9)
    assert plan_runs(plan, max_days_per_run(Interval.M15)) == [
        ("BTCUSDT", first, last),
        ("ETHUSDT", first, last),
    ]
    # A day of 1s candles is a run of its own (86,400 candles).
    assert len(plan_runs(plan, max_days_per_run(Interval.S1))) == 6
