"""Candles to files: CSV or Parquet, exact either way, streamed a page at a time.

CSV keeps the exchange's own decimal strings. Parquet stores each price and volume column as
``decimal128(38, 8)``: Binance writes every kline decimal with 8 places, so no value is
rounded, and one with more places stops the export with a clear error instead of being cut.
Times are UTC: ISO-8601 text in CSV, ``timestamp[ms, UTC]`` in Parquet. Reads go through
``MarketQuery`` (closed candles only, resampled intervals built as the API builds them) one
page at a time, so a page is the most held in memory. ``cryptobot export`` writes one file
per symbol and UTC month; the API streams one range per request (``format=csv|parquet``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import IO, Any, Literal

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS
from cryptobot_core.query import MAX_LIMIT, MarketQuery
from cryptobot_core.query.rows import CandleRow

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
TIME_COLUMNS = ("open_time", "close_time")
DECIMAL_COLUMNS = DECIMAL_FIELDS
COLUMNS = (*TIME_COLUMNS, *DECIMAL_COLUMNS, "trades")
# Binance writes every kline price and quantity with 8 decimal places.
DECIMAL_SCALE = 8


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


def pages(
    query: MarketQuery, symbol: str, interval: Interval, start_ms: int, end_ms: int
) -> Iterator[list[CandleRow]]:
    """Every closed, final candle of ``symbol`` opening in [start_ms, end_ms), page by page.

    Provisional candles (built from the 1m stream ahead of the daily history) are left out:
    a file holds what will not change.

    Paging stops at the newest stored candle; an empty stretch before the first one costs one
    small indexed read per page of MAX_LIMIT slots.
    """
    cursor: str | None = None
    while True:
        page = query.candles(
            symbol, interval, start=start_ms, end=end_ms, limit=MAX_LIMIT, cursor=cursor
        )
        final = [row for row in page.candles if not row.provisional]
        if final:
            yield final
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def first_nonempty(batches: Iterable[list[CandleRow]]) -> Iterator[list[CandleRow]] | None:
    """``batches`` (as ``pages`` yields them: never an empty one), or None when there is none.

    Reads the first page now, so an unknown symbol or an unreachable store fails before a
    caller commits to writing anything.
    """
    it = iter(batches)
    head = next(it, None)
    return None if head is None else chain([head], it)


def csv_chunks(batches: Iterable[Sequence[CandleRow]]) -> Iterator[str]:
    """The header, then one chunk of lines per page: decimals exactly as stored."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for rows in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([getattr(row, name) for name in COLUMNS] for row in rows)
        yield buffer.getvalue()


def write_csv(batches: Iterable[Sequence[CandleRow]], path: Path) -> int:
    """Write ``batches`` as CSV to ``path``; returns the number of candles."""
    counted = _counting(batches)
    with open(path, "w", newline="") as out:
        out.writelines(csv_chunks(counted))
    return counted.rows


def _decimals(name: str, text: list[str]) -> Any:
    import pyarrow as pa

    try:
        return pa.array([Decimal(v) for v in text], type=pa.decimal128(38, DECIMAL_SCALE))
    except (pa.ArrowInvalid, ArithmeticError):
        worst = max(text, key=lambda v: -int(Decimal(v).as_tuple().exponent))
        raise ValidationError(
            f"{name} value {worst!r} has more than {DECIMAL_SCALE} decimal places; "
            "export it as CSV, which keeps every digit"
        ) from None


def write_parquet(batches: Iterable[Sequence[CandleRow]], out: Path | IO[bytes]) -> int:
    """Write ``batches`` as Parquet, one row group per page; returns the number of candles."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            *((name, pa.timestamp("ms", tz="UTC")) for name in TIME_COLUMNS),
            *((name, pa.decimal128(38, DECIMAL_SCALE)) for name in DECIMAL_COLUMNS),
            ("trades", pa.int64()),
        ]
    )
    counted = _counting(batches)
    with pq.ParquetWriter(out, schema) as writer:
        for rows in counted:
            columns: list[Any] = [
                pa.array(
                    [datetime.fromisoformat(getattr(r, name)) for r in rows],
                    type=pa.timestamp("ms", tz="UTC"),
                )
                for name in TIME_COLUMNS
            ]
            columns += [_decimals(n, [getattr(r, n) for r in rows]) for n in DECIMAL_COLUMNS]
            columns.append(pa.array([r.trades for r in rows], type=pa.int64()))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return counted.rows


class _counting:
    """Pass pages through, counting their rows."""

    def __init__(self, batches: Iterable[Sequence[CandleRow]]) -> None:
        self._batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[Sequence[CandleRow]]:
        for rows in self._batches:
            self.rows += len(rows)
            yield rows


WRITERS = {"csv": write_csv, "parquet": write_parquet}


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
    written: list[ExportedFile] = []
    for symbol in symbols:
        query.require_symbol(symbol)
        for month, lo, hi in months(start_ms, end_ms):
            batches = first_nonempty(pages(query, symbol, interval, lo, hi))
            if batches is None:
                continue
            folder = out_dir / symbol
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{symbol}-{interval.value}-{month}.{fmt}"
            rows = WRITERS[fmt](batches, path)
            written.append(ExportedFile(symbol, month, path, rows))
    return written
