"""Candles to files, one per symbol and UTC month: CSV or Parquet, exact either way.

CSV keeps the exchange's own decimal strings. Parquet stores each price and volume column as
a ``decimal128(38, s)``, where ``s`` is the largest number of decimal places the column holds
in that file, so no value is rounded (Binance gives 8). Times are UTC: ISO-8601 text in CSV,
``timestamp[ms, UTC]`` in Parquet. Reads go through ``MarketQuery`` (closed candles only,
resampled intervals built as the API builds them) a page at a time, so a month is the most
held in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS
from cryptobot_core.query import MAX_LIMIT, MarketQuery
from cryptobot_core.query.rows import CandleRow

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
TIME_COLUMNS = ("open_time", "close_time")
DECIMAL_COLUMNS = DECIMAL_FIELDS
COLUMNS = (*TIME_COLUMNS, *DECIMAL_COLUMNS, "trades")


@dataclass(frozen=True)
class ExportedFile:
    """One written file and how many candles it holds."""

    symbol: str
    month: str
    path: Path
    rows: int


def months(start_ms: int, end_ms: int) -> Iterator[tuple[str, int, int]]:
    """``(YYYY-MM, lo, hi)`` for each UTC month that [start_ms, end_ms) touches, clipped to it."""
    day = datetime.fromtimestamp(start_ms / 1000, UTC)
    first = datetime(day.year, day.month, 1, tzinfo=UTC)
    while int(first.timestamp() * 1000) < end_ms:
        following = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=UTC)
        lo = max(start_ms, int(first.timestamp() * 1000))
        hi = min(end_ms, int(following.timestamp() * 1000))
        yield f"{first.year:04d}-{first.month:02d}", lo, hi
        first = following


def read_window(
    query: MarketQuery, symbol: str, interval: Interval, start_ms: int, end_ms: int
) -> list[CandleRow]:
    """Every closed candle of ``symbol`` opening in [start_ms, end_ms), following the pages."""
    rows: list[CandleRow] = []
    cursor: str | None = None
    while True:
        page = query.candles(
            symbol, interval, start=start_ms, end=end_ms, limit=MAX_LIMIT, cursor=cursor
        )
        rows.extend(page.candles)
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def write_csv(rows: Sequence[CandleRow], path: Path) -> None:
    """A header and one line per candle, decimals exactly as stored."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, name) for name in COLUMNS])


def _scale(values: Sequence[str]) -> int:
    places = [
        -exponent for v in values if isinstance(exponent := Decimal(v).as_tuple().exponent, int)
    ]
    return max([0, *places])


def write_parquet(rows: Sequence[CandleRow], path: Path) -> None:
    """Decimal columns wide enough for every value, UTC millisecond timestamps, int trades."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, pa.Array] = {}
    for name in TIME_COLUMNS:
        stamps = [datetime.fromisoformat(getattr(r, name).replace("Z", "+00:00")) for r in rows]
        columns[name] = pa.array(stamps, type=pa.timestamp("ms", tz="UTC"))
    for name in DECIMAL_COLUMNS:
        text = [getattr(r, name) for r in rows]
        columns[name] = pa.array([Decimal(v) for v in text], type=pa.decimal128(38, _scale(text)))
    columns["trades"] = pa.array([r.trades for r in rows], type=pa.int64())
    pq.write_table(pa.table(columns), path)


def export(
    query: MarketQuery,
    symbols: Sequence[str],
    interval: Interval,
    start_ms: int,
    end_ms: int,
    fmt: Format,
    out_dir: Path,
) -> list[ExportedFile]:
    """Write ``out_dir/<SYMBOL>/<SYMBOL>-<interval>-<YYYY-MM>.<fmt>`` for every month with data."""
    write = write_csv if fmt == "csv" else write_parquet
    written: list[ExportedFile] = []
    for symbol in symbols:
        query.require_symbol(symbol)
        for month, lo, hi in months(start_ms, end_ms):
            rows = read_window(query, symbol, interval, lo, hi)
            if not rows:
                continue
            folder = out_dir / symbol
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{symbol}-{interval.value}-{month}.{fmt}"
            write(rows, path)
            written.append(ExportedFile(symbol, month, path, len(rows)))
    return written
