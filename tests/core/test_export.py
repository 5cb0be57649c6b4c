"""`cryptobot export` against a real store: files per symbol and month, read back with pandas,
equal to the stored candles (exact strings in CSV, exact decimals in Parquet)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from cryptobot_core.export import DECIMAL_COLUMNS, months
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import Store
from tests.core.test_history import candle

START = int(datetime(2025, 1, 31, 12, tzinfo=UTC).timestamp() * 1000)
CANDLES = 96  # 24 h of 15m across the month boundary
CLOSES = ("100.5", "0.00012345", "12345.12345678", "7")


def _seed(store: Store) -> dict[str, list[Candle]]:
    stored: dict[str, list[Candle]] = {}
    for s, symbol in enumerate(("BTCUSDT", "ETHUSDT")):
        store.history().insert_missing(
            candle(symbol, START + i * 900_000, close=CLOSES[(i + s) % len(CLOSES)])
            for i in range(CANDLES)
        )
        stored[symbol] = store.history().find(symbol)
    return stored


def _run(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")},
        "CRYPTOBOT_MONGO_URI": settings.effective_mongo_uri,
        "CRYPTOBOT_MONGO_DB": settings.mongo_db,
        "CRYPTOBOT_EXCHANGE": "sim",
        "CRYPTOBOT_SYMBOLS": "BTCUSDT,ETHUSDT",
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("cryptobot")), "export", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_a_file_per_symbol_and_month_equal_to_the_store(
    settings: Settings, store: Store, tmp_path: Path, fmt: str
) -> None:
    stored = _seed(store)
    out = tmp_path / "out"
    done = _run(
        settings,
        tmp_path,
        *("--start", "2025-01-01", "--end", "2025-03-01", "--format", fmt, "--out", str(out)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 files, 192 candles" in done.stdout
    for symbol, candles in stored.items():
        files = sorted((out / symbol).iterdir())
        assert [f.name for f in files] == [
            f"{symbol}-15m-2025-01.{fmt}",
            f"{symbol}-15m-2025-02.{fmt}",
        ]
        if fmt == "csv":
            frames = [pd.read_csv(f, dtype=str) for f in files]
        else:
            frames = [pd.read_parquet(f) for f in files]
        assert [len(f) for f in frames] == [48, 48]  # 12:00..24:00, then 00:00..12:00
        table = pd.concat(frames, ignore_index=True)
        for i, c in enumerate(candles):
            row = table.iloc[i]
            opened = pd.Timestamp(row["open_time"])
            assert int(opened.timestamp() * 1000) == c.open_ms
            assert int(row["trades"]) == c.trades
            rest = c.to_rest_row()
            text = dict(zip(("open", "high", "low", "close", "volume"), rest[1:6], strict=True))
            text |= dict(zip(DECIMAL_COLUMNS[5:], (rest[7], rest[9], rest[10]), strict=True))
            for name in DECIMAL_COLUMNS:
                if fmt == "csv":  # the exchange's own text, character for character
                    assert row[name] == text[name], (name, i)
                else:  # a decimal column: the exact value, never a float
                    assert isinstance(row[name], Decimal), (name, type(row[name]))
                    assert row[name] == getattr(c, name), (name, i)


def test_bad_input_is_one_clear_line(settings: Settings, store: Store, tmp_path: Path) -> None:
    _seed(store)
    cases = {
        ("--start", "2025-02-01", "--end", "2025-01-01"): "--start must be before --end",
        ("--start", "yesterday"): "ISO-8601",
        ("--start", "2025-01-01", "--format", "xlsx"): "allowed: csv, parquet",
        ("--start", "2025-01-01", "--interval", "7m"): "allowed: 1m, 3m, 5m, 15m",
        ("--start", "2025-01-01", "--symbols", "DOGEBTC"): "no data for symbol 'DOGEBTC'",
    }
    for args, needle in cases.items():
        done = _run(settings, tmp_path, *args)
        assert done.returncode != 0, args
        assert needle in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_months_split_a_window_at_utc_month_starts() -> None:
    jan31 = int(datetime(2025, 1, 31, tzinfo=UTC).timestamp() * 1000)
    mar1 = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
    feb1 = int(datetime(2025, 2, 1, tzinfo=UTC).timestamp() * 1000)
    assert list(months(jan31, mar1)) == [("2025-01", jan31, feb1), ("2025-02", feb1, mar1)]
    dec = int(datetime(2024, 12, 15, tzinfo=UTC).timestamp() * 1000)
    assert [m for m, _, _ in months(dec, jan31)] == ["2024-12", "2025-01"]
