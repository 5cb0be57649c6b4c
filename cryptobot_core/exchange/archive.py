"""Binance's bulk kline archives (data.binance.vision): the fast path for closed history.

Layout, relative to the archive base URL::

    data/spot/monthly/klines/<SYM>/<interval>/<SYM>-<interval>-<YYYY>-<MM>.zip
    data/spot/daily/klines/<SYM>/<interval>/<SYM>-<interval>-<YYYY>-<MM>-<DD>.zip
    ... and ``.zip.CHECKSUM`` beside each: "<sha256 hex>  <file name>"

Each zip holds one header-less CSV in the REST field order; spot files of periods from
2025-01-01 on give times in microseconds, older ones in milliseconds.

:class:`ArchiveKlines` answers ``klines_many`` exactly as the REST client does (the history
code cannot tell them apart), but takes every closed month from its monthly file and every
closed day of a month not yet over from its daily file. Each file is streamed to a temporary
file on disk while its SHA-256 is computed, checked against the CHECKSUM, then read row by
row through the same exact-decimal parser as REST. Whatever the archives do not give goes to
REST: a period not published yet, a missing file, a wrong checksum, a truncated or unreadable
zip, and any open time a file lacks (so a file missing rows costs a REST call for those rows
only; REST returns nothing where the exchange itself had an outage). ``report()`` says which
files were used and why any fell back.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import httpx

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange.exchange_info import normalize_symbol
from cryptobot_core.exchange.rest import BinanceClient
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, Source

if TYPE_CHECKING:
    from cryptobot_core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
DAY_MS = Interval.D1.ms
# Spot archives switched to microsecond timestamps for periods from 2025-01-01 on.
MICROS_FROM_MS = 1_735_689_600_000
# A time this large cannot be milliseconds (year 5138): it is microseconds.
_MICROS_ABOVE = 100_000_000_000_000
_CHECKSUM_RE = re.compile(r"^([0-9a-f]{64})\s")
_CHUNK = 1 << 16
# CSV read and parsed this many characters at a time (about 8,000 rows of 1m).
_BATCH_CHARS = 1 << 20
# Files larger than this are spooled to disk while they download, never held in memory.
_SPOOL_BYTES = 4 << 20


def interval_path_name(iv: Interval) -> str:
    """The interval as archive paths spell it (``1mo`` for 1M)."""
    return "1mo" if iv is Interval.MO1 else iv.value


@dataclass(frozen=True)
class ArchiveFile:
    """One archive file: a symbol's candles of one interval over one month or day."""

    symbol: str
    interval: Interval
    daily: bool
    start_ms: int
    end_ms: int  # first instant after the period

    @classmethod
    def of(cls, symbol: str, interval: Interval | str, period: str) -> ArchiveFile:
        """The file of ``period`` (``YYYY-MM`` monthly, ``YYYY-MM-DD`` daily)."""
        iv = Interval.parse("1M" if interval == "1mo" else interval)
        parts = period.split("-")
        year, month = int(parts[0]), int(parts[1])
        if len(parts) == 3:
            start = datetime(year, month, int(parts[2]), tzinfo=UTC)
            start_ms = int(start.timestamp() * 1000)
            return cls(symbol, iv, True, start_ms, start_ms + DAY_MS)
        start_ms = int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)
        days = calendar.monthrange(year, month)[1]
        return cls(symbol, iv, False, start_ms, start_ms + days * DAY_MS)

    @property
    def period(self) -> str:
        """``YYYY-MM`` or ``YYYY-MM-DD``."""
        d = datetime.fromtimestamp(self.start_ms / 1000, UTC)
        return f"{d:%Y-%m-%d}" if self.daily else f"{d:%Y-%m}"

    @property
    def name(self) -> str:
        """The zip's file name, e.g. ``BTCUSDT-1m-2025-01.zip``."""
        return f"{self.symbol}-{interval_path_name(self.interval)}-{self.period}.zip"

    @property
    def path(self) -> str:
        """The zip's path under the base URL, without the leading slash."""
        freq = "daily" if self.daily else "monthly"
        return (
            f"data/spot/{freq}/klines/{self.symbol}/{interval_path_name(self.interval)}/{self.name}"
        )

    @property
    def micros(self) -> bool:
        """True when the file gives times in microseconds (periods from 2025-01-01 on)."""
        return self.start_ms >= MICROS_FROM_MS


def plan_files(
    symbol: str, interval: Interval, start_ms: int, end_ms: int, now_ms: int
) -> list[ArchiveFile]:
    """The archive files that cover [start_ms, end_ms) as far as closed periods reach.

    A month over by ``now_ms`` comes from its monthly file (even when the range takes only
    part of it: one file beats many small requests); a day over by ``now_ms`` in a month
    that is not, from its daily file. Intervals above a day have no daily files.
    """
    files: list[ArchiveFile] = []
    month = Interval.MO1.floor(start_ms)
    while month < end_ms:
        monthly = ArchiveFile.of(
            symbol, interval, f"{datetime.fromtimestamp(month / 1000, UTC):%Y-%m}"
        )
        if monthly.end_ms <= now_ms:
            files.append(monthly)
        elif interval.ms <= DAY_MS and not interval.is_calendar:
            day = max(month, start_ms - start_ms % DAY_MS)
            while day < min(end_ms, monthly.end_ms) and day + DAY_MS <= now_ms:
                stamp = datetime.fromtimestamp(day / 1000, UTC)
                files.append(ArchiveFile.of(symbol, interval, f"{stamp:%Y-%m-%d}"))
                day += DAY_MS
        month = monthly.end_ms
    return files


class ArchiveMiss(Exception):
    """An archive file could not be used; the reason says why (its range goes to REST)."""


@dataclass
class ArchiveReport:
    """What the archive path did: files used, rows read, and every fallback with its reason."""

    files: int = 0
    rows: int = 0
    bytes: int = 0
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    rest_ranges: int = 0

    def summary(self) -> dict[str, Any]:
        """Plain metadata for a run (the first 50 fallbacks listed)."""
        return {
            "archive_files": self.files,
            "archive_rows": self.rows,
            "archive_bytes": self.bytes,
            "archive_fallbacks": len(self.fallbacks),
            "archive_fallback_list": self.fallbacks[:50],
            "rest_ranges": self.rest_ranges,
        }


def parse_rows(file: ArchiveFile, text: IO[str]) -> Iterator[list[Any]]:
    """REST-shaped rows of an archive CSV, a batch of lines at a time.

    Each batch goes through the C JSON parser with ``parse_float=str``: every decimal keeps
    its exact text (as REST gives it), times and trade counts become ints. Microsecond times
    (spot files from 2025 on) become milliseconds. Any row the JSON parser reads but that is
    not a valid kline is refused by the candle parser that follows (``from_rest_rows``).
    """
    number = 0
    while True:
        lines = [line.strip() for line in text.readlines(_BATCH_CHARS)]
        lines = [line for line in lines if line]
        if not lines:
            return
        try:
            rows = json.loads("[[" + "],[".join(lines) + "]]", parse_float=str)
        except ValueError:
            raise ArchiveMiss(
                f"{file.name}: a line after line {number} is not a kline row"
            ) from None
        try:
            if rows[0][0] >= _MICROS_ABOVE:  # a file's times are all in one unit
                for row in rows:
                    row[0] //= 1000
                    row[6] //= 1000
        except (TypeError, IndexError, KeyError):
            raise ArchiveMiss(
                f"{file.name}: a line after line {number} is not a kline row"
            ) from None
        number += len(rows)
        yield from rows


class ArchiveKlines:
    """``klines_many`` from the bulk archives where closed periods allow, REST for the rest.

    ``rest`` is the REST client it falls back to (and asks for the exchange's time). Candles read from archives carry
    ``Source.ARCHIVE``; every value is what REST gives for the same candle.
    """

    def __init__(
        self,
        rest: BinanceClient,
        base_url: str = DEFAULT_ARCHIVE_URL,
        *,
        timeout_s: float = 60.0,
        max_workers: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValidationError(
                f"the archive URL must start with http:// or https://, got {base_url!r}"
            )
        self.rest = rest
        self.base_url = base_url.rstrip("/")
        self.max_workers = max_workers
        self.report = ArchiveReport()
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_workers * 2),
            headers={"User-Agent": "cryptobot/0.1"},
            follow_redirects=True,
            transport=transport,
        )

    def close(self) -> None:
        """Close the archive connection pool (not the REST client, which the caller owns)."""
        self._http.close()

    def __enter__(self) -> ArchiveKlines:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def server_time_ms(self) -> int:
        """The exchange's clock (through REST): it decides what is closed."""
        return self.rest.server_time_ms()

    # -- one file ---------------------------------------------------------------------------

    def _checksum(self, file: ArchiveFile) -> str:
        try:
            resp = self._http.get(f"/{file.path}.CHECKSUM")
        except httpx.HTTPError as exc:
            raise ArchiveMiss(f"{file.name}.CHECKSUM: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise ArchiveMiss(f"{file.name}.CHECKSUM: HTTP {resp.status_code}")
        found = _CHECKSUM_RE.match(resp.text.strip().lower() + " ")
        if not found:
            raise ArchiveMiss(f"{file.name}.CHECKSUM is not a SHA-256 line")
        return found.group(1)

    def _download(self, file: ArchiveFile, out: IO[bytes]) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        try:
            with self._http.stream("GET", f"/{file.path}") as resp:
                if resp.status_code != 200:
                    raise ArchiveMiss(f"{file.name}: HTTP {resp.status_code}")
                for chunk in resp.iter_bytes(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except httpx.HTTPError as exc:
            raise ArchiveMiss(f"{file.name}: {type(exc).__name__}: {exc}") from None
        return digest.hexdigest(), size

    def fetch_file(self, file: ArchiveFile) -> list[Candle]:
        """Every candle of one verified archive file; ArchiveMiss when it cannot be used."""
        expected = self._checksum(file)
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as spool:
            actual, size = self._download(file, spool)
            if actual != expected:
                raise ArchiveMiss(
                    f"{file.name}: SHA-256 {actual[:12]}... does not match its CHECKSUM "
                    f"{expected[:12]}..."
                )
            spool.seek(0)
            try:
                with zipfile.ZipFile(spool) as zf:
                    members = [m for m in zf.namelist() if m.endswith(".csv")]
                    if len(members) != 1:
                        raise ArchiveMiss(f"{file.name}: holds {len(members)} CSV files, not 1")
                    with zf.open(members[0]) as raw:
                        text = io.TextIOWrapper(raw, encoding="ascii")
                        rows = list(parse_rows(file, text))
            except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError) as exc:
                raise ArchiveMiss(f"{file.name}: unreadable zip ({exc})") from None
        try:
            candles = Candle.from_rest_rows(
                file.symbol, file.interval, rows, now_ms=None, source=Source.ARCHIVE
            )
        except ValidationError as exc:
            raise ArchiveMiss(f"{file.name}: {exc}") from None
        with self._lock:
            self.report.files += 1
            self.report.rows += len(candles)
            self.report.bytes += size
        return candles

    def _try_file(self, file: ArchiveFile) -> list[Candle] | None:
        try:
            return self.fetch_file(file)
        except ArchiveMiss as exc:
            log.info("archive fallback to REST: %s", exc)
            with self._lock:
                self.report.fallbacks.append({"file": file.name, "reason": str(exc)})
            return None

    # -- what history calls -------------------------------------------------------------------

    def klines_many(
        self,
        requests: Iterable[Sequence[Any]],
        *,
        max_workers: int = 8,
        include_open: bool = False,
    ) -> list[list[Candle]]:
        """Closed candles of many (symbol, interval, start_ms, end_ms) ranges, one list each.

        The same answer as the REST client's ``klines_many``. ``include_open`` goes to REST
        unchanged (archives only hold closed periods).
        """
        parsed = [
            (normalize_symbol(sym), Interval.parse(iv), int(lo), int(hi))
            for sym, iv, lo, hi in requests
        ]
        if not parsed:
            return []
        now_ms = self.rest.server_time_ms()
        plans = [plan_files(sym, iv, lo, hi, now_ms) for sym, iv, lo, hi in parsed]
        unique = list(dict.fromkeys(f for plan in plans for f in plan))
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="archive") as pool:
            fetched = dict(zip(unique, pool.map(self._try_file, unique), strict=True))
        found: list[dict[int, Candle]] = []
        rest_requests: list[tuple[str, Interval, int, int]] = []
        owners: list[int] = []
        for i, ((sym, iv, lo, hi), plan) in enumerate(zip(parsed, plans, strict=True)):
            have = {
                c.open_ms: c
                for f in plan
                for c in fetched[f] or ()
                if lo <= c.open_ms < hi and c.close_ms < now_ms
            }
            found.append(have)
            for run in _missing_runs(iv, lo, hi, have):
                rest_requests.append((sym, iv, *run))
                owners.append(i)
        with self._lock:
            self.report.rest_ranges += len(rest_requests)
        if rest_requests:
            answers = self.rest.klines_many(
                rest_requests, max_workers=max_workers, include_open=include_open
            )
            for owner, candles in zip(owners, answers, strict=True):
                for c in candles:
                    found[owner].setdefault(c.open_ms, c)
        return [[have[k] for k in sorted(have)] for have in found]


def _missing_runs(iv: Interval, lo: int, hi: int, have: dict[int, Candle]) -> list[tuple[int, int]]:
    """[start, end) runs of open times in [lo, hi) that ``have`` lacks."""
    runs: list[tuple[int, int]] = []
    for t in iv.opens_between(lo, hi):
        if t in have:
            continue
        if runs and runs[-1][1] == t:
            runs[-1] = (runs[-1][0], iv.open_after(t))
        else:
            runs.append((t, iv.open_after(t)))
    return runs


@contextmanager
def history_client(settings: Settings) -> Iterator[BinanceClient | ArchiveKlines]:
    """The klines client history uses: archives first, unless ``history_source`` is rest."""
    with BinanceClient.from_settings(settings) as rest:
        if settings.history_source == "rest":
            yield rest
            return
        with ArchiveKlines(rest, settings.archive_base_url) as fast:
            yield fast
