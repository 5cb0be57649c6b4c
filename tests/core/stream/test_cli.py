"""`cryptobot stream reset|repair` against the real store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from cryptobot_core.cli import app
from cryptobot_core.settings import Settings, get_settings
from cryptobot_core.store import STREAM_GAPS, STREAMING_1M, CandleStore, StreamGap, StreamGapStore
from tests.core.stream.conftest import T0, make_candle, subprocess_env


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in subprocess_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _fill(mongo_db: Any) -> None:
    CandleStore(mongo_db, STREAMING_1M).upsert(
        [make_candle("BTCUSDT", T0 + i * 60_000) for i in range(3)]
    )
    StreamGapStore(mongo_db).record([StreamGap.of_span(["BTCUSDT"], T0, T0 + 60_000, "test")])


def test_reset_asks_and_keeps_data_when_declined(cli_env: None, mongo_db: Any) -> None:
    _fill(mongo_db)
    result = CliRunner().invoke(app, ["stream", "reset"], input="n\n")
    assert result.exit_code == 1
    assert "nothing deleted" in result.output
    assert mongo_db[STREAMING_1M].count_documents({}) == 3


def test_reset_after_confirmation_and_with_yes(cli_env: None, mongo_db: Any) -> None:
    _fill(mongo_db)
    result = CliRunner().invoke(app, ["stream", "reset"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "deleted 3 candles" in result.output
    assert mongo_db[STREAMING_1M].count_documents({}) == 0
    assert mongo_db[STREAM_GAPS].count_documents({}) == 0
    _fill(mongo_db)
    result = CliRunner().invoke(app, ["stream", "reset", "--yes"])
    assert result.exit_code == 0 and "deleted 3 candles" in result.output
    assert mongo_db[STREAMING_1M].count_documents({}) == 0


def test_repair_with_a_bad_since_is_a_clear_error_without_traceback(settings: Settings) -> None:
    env = {**os.environ, **subprocess_env(settings)}
    proc = subprocess.run(
        [sys.executable, "-m", "cryptobot_core.stream", "repair", "--since", "yesterday"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--since must be an ISO date" in proc.stderr
    assert "Traceback" not in proc.stderr
