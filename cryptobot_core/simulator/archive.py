"""Binance's bulk kline archives (the data.binance.vision layout), built from the market.

Paths, relative to the simulator's base URL (``server.url``, like ``https://data.binance.vision``)::

    /data/spot/monthly/klines/<SYM>/<interval>/<SYM>-<interval>-<YYYY>-<MM>.zip
    /data/spot/daily/klines/<SYM>/<interval>/<SYM>-<interval>-<YYYY>-<MM>-<DD>.zip
    ... and the same with ``.zip.CHECKSUM``: "<sha256 hex>  <file name>" (no newline)

The layout itself (``ArchiveFile``) is the client's, in ``cryptobot_core.exchange.archive``.
Each zip holds one CSV named like the zip, without a header, with the 12 columns of
``/api/v3/klines`` (decimals as Binance writes them, ``ignore`` = 0); files of periods from
2025-01-01 on give open and close times in microseconds, older ones in milliseconds. A file
holds the candles opening in its period; the 1M interval is spelled ``1mo`` in paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import threading
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
from aiohttp import web

from cryptobot_core.exchange.archive import (
    ArchiveFile,
    interval_path_name,
)
from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator.clock import SimClock
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.market import (
    DAY_MS,
    I64,
    Market,
    aggregate,
)

_PATH_RE = re.compile(
    r"^/?data/spot/(?P<freq>monthly|daily)/klines/(?P<sym>[A-Z0-9]{2,20})/(?P<iv>[0-9]{1,2}[smhdw]|1mo)/"
    r"(?P<fsym>[A-Z0-9]{2,20})-(?P<fiv>[0-9]{1,2}[smhdw]|1mo)-(?P<y>\d{4})-(?P<m>\d{2})(?:-(?P<d>\d{2}))?"
    r"\.zip(?P<checksum>\.CHECKSUM)?$"
)
# Intervals longer than a day have no daily files.
_DAILY_INTERVALS = frozenset(iv for iv in Interval if not iv.is_calendar and iv.ms <= DAY_MS)


def parse_archive_path(path: str) -> tuple[ArchiveFile, bool] | None:
    """(file, is the CHECKSUM) for a well-formed archive path, else None."""
    m = _PATH_RE.match(path)
    if not m or m["sym"] != m["fsym"] or m["iv"] != m["fiv"]:
        return None
    daily = m["freq"] == "daily"
    if daily != (m["d"] is not None):
        return None
    period = f"{m['y']}-{m['m']}" + (f"-{m['d']}" if daily else "")
    try:
        iv = Interval("1M" if m["iv"] == "1mo" else m["iv"])
        file = ArchiveFile.of(m["sym"], iv, period)
    except ValueError:  # an interval Binance does not have, or a date that does not exist
        return None
    if daily and iv not in _DAILY_INTERVALS:
        return None
    return file, m["checksum"] is not None


@dataclass(frozen=True)
class BuiltFile:
    """A built zip with its digests."""

    zip_bytes: bytes
    sha256: str
    md5: str
    rows: int


# ---- fast CSV -------------------------------------------------------------------------------

_COMMA = ord(",")
_DOT = ord(".")
_NL = ord("\n")
_ZERO = ord("0")
_BLOCK = 65_536  # rows per CSV block


# ASCII of 0000 .. 9999: digits are produced four at a time (a quarter of the divisions).
_QUADS = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), np.uint8).reshape(
    10_000, 4
)


def _width(col: I64) -> int:
    """Digits of the largest value of ``col`` (at least 1)."""
    return max(1, len(str(int(col.max())))) if len(col) else 1


def _put_digits(table: npt.NDArray[np.uint8], at: int, col: I64, width: int, pad: bool) -> int:
    """Write ``col`` right-aligned in ``width`` columns of ``table`` from column ``at``.

    ``pad``: keep leading zeros (a fixed-width fraction). Otherwise they become 0 bytes, which
    the CSV assembly drops. Returns the next free column.
    """
    end = at + width
    rest = col
    for j in range(-(-width // 4)):
        rest, low = np.divmod(rest, 10_000)
        quad = _QUADS[low]
        lo = end - 4 * (j + 1)
        if lo >= at:
            table[:, lo : lo + 4] = quad
        else:
            table[:, at : end - 4 * j] = quad[:, at - lo :]
    if not pad and width > 1:
        # Blank the zeros before the first significant digit (the last digit always stays).
        lead = table[:, at : end - 1]
        lead[~np.logical_or.accumulate(lead != _ZERO, axis=1)] = 0
    return end


def csv_bytes(times: I64, close_times: I64, values: I64, pd: int, qd: int) -> bytes:
    """Binance's headerless 12-column kline CSV for rows ``values`` (n x 9, integer units).

    Prices have ``pd`` decimals, quantities ``qd``, quote amounts 8; all are written with 8
    decimals as Binance does. Vectorised: the rows are laid out in a byte table, one numpy pass
    per column and four digits at a time, then the padding is squeezed out; never one ``%``
    per row. Blocks of rows bound the table's memory (a month of 1s is 2.7 M rows).
    """
    return b"".join(
        _csv_block(
            times[i : i + _BLOCK], close_times[i : i + _BLOCK], values[i : i + _BLOCK], pd, qd
        )
        for i in range(0, len(times), _BLOCK)
    )


def _csv_block(times: I64, close_times: I64, values: I64, pd: int, qd: int) -> bytes:
    columns: list[tuple[I64, int | None]] = [(times, None)]  # (values, decimals or integer)
    columns += [(values[:, f], pd) for f in (0, 1, 2, 3)]
    columns += [(values[:, 4], qd), (close_times, None), (values[:, 5], 8), (values[:, 6], None)]
    columns += [(values[:, 7], qd), (values[:, 8], 8)]
    plan: list[tuple[I64, I64 | None, int, int]] = []  # (whole, fraction, decimals, width)
    total = 2  # the constant "0" column and the newline
    for col, decimals in columns:
        if decimals is None:
            plan.append((col, None, 0, _width(col)))
            total += plan[-1][3] + 1
        else:
            units, fraction = np.divmod(col, 10**decimals)
            plan.append((units, fraction, decimals, _width(units)))
            total += plan[-1][3] + 10
    table = np.empty((len(times), total), dtype=np.uint8)
    at = 0
    for whole, frac, decimals, width in plan:
        at = _put_digits(table, at, whole, width, pad=False)
        if frac is not None:
            table[:, at] = _DOT
            at = _put_digits(table, at + 1, frac, decimals, pad=True) if decimals else at + 1
            table[:, at : at + 8 - decimals] = _ZERO
            at += 8 - decimals
        table[:, at] = _COMMA
        at += 1
    table[:, at] = _ZERO
    table[:, at + 1] = _NL
    flat = table.ravel()
    return flat[flat != 0].tobytes()


class Archives:
    """Builds archive files from the market; a bounded cache keeps recent ones."""

    def __init__(self, market: Market, delay_s: float, cache_mb: float, stats: Stats) -> None:
        self.market = market
        self.stats = stats
        self.delay_ms = int(delay_s * 1000)
        self._cache: OrderedDict[tuple[str, str, int, bool], BuiltFile] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 1024 * 1024)
        self._lock = threading.Lock()

    def published_ms(self, file: ArchiveFile) -> int:
        """When ``file`` appears: after its last candle closes, plus the publication delay."""
        last_open = file.interval.floor(file.end_ms - 1)
        return max(file.end_ms, file.interval.open_after(last_open)) + self.delay_ms

    def rows(self, file: ArchiveFile) -> tuple[I64, I64]:
        """(open times ms, values n x 9) of the candles opening in the file's period."""
        iv, sym = file.interval, file.symbol
        listing = self.market.listing(sym)
        end = file.end_ms if listing.delisted_ms is None else min(file.end_ms, listing.delisted_ms)
        start = max(file.start_ms, iv.floor(listing.listed_ms))
        if end <= start:
            return np.empty(0, dtype=np.int64), np.empty((0, 9), dtype=np.int64)
        if iv in _DAILY_INTERVALS and iv is not Interval.S1:
            # Whole days of minutes in one vectorised pass, grouped into candles.
            first = start - start % DAY_MS
            count = -(-(end - first) // DAY_MS) * 1440
            vals = self.market.compute_minutes([sym], first, count)[0][:9]
            valid = self.market.valid_minutes(sym, first, count)
            k = iv.ms // MINUTE_MS
            g = count // k
            has, agg = aggregate(vals.reshape(9, g, k).transpose(1, 0, 2), valid.reshape(g, k))
            opens = first + np.arange(g, dtype=np.int64) * iv.ms
            keep = has & (opens >= file.start_ms) & (opens < file.end_ms)
            return opens[keep], np.ascontiguousarray(agg[keep])
        # 1s, 3d, 1w, 1M: few rows per file, or second slices; the market's own path.
        far = iv.open_after(iv.floor(file.end_ms))  # every candle of the period is closed
        rows = self.market.values_between(sym, iv, start, end, far)
        return (
            np.asarray([t for t, _ in rows], dtype=np.int64),
            np.asarray([v for _, v in rows], dtype=np.int64).reshape(-1, 9),
        )

    def build(self, file: ArchiveFile, partial: bool = False) -> BuiltFile | None:
        """The zip of ``file`` (None when it has no row); ``partial`` keeps half the rows."""
        key = (file.symbol, file.interval.value, file.start_ms, partial)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        opens, values = self.rows(file)
        if len(opens) == 0:
            return None
        self.stats.add("archive_builds")
        if partial:
            keep = max(1, len(opens) // 2)
            opens, values = opens[:keep], values[:keep]
        if file.interval.is_calendar:
            closes = np.asarray([file.interval.close_time(int(t)) for t in opens], dtype=np.int64)
        else:
            closes = opens + (file.interval.ms - 1)
        if file.micros:
            opens, closes = opens * 1000, closes * 1000 + 999
        pd, qd = self.market.decimals(file.symbol)
        data = csv_bytes(opens, closes, values, pd, qd)
        buf = io.BytesIO()
        published = datetime.fromtimestamp(self.published_ms(file) / 1000, UTC)
        info = zipfile.ZipInfo(file.name[: -len(".zip")] + ".csv", published.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        # Level 1: a month of 1m compresses 4x faster than at level 6 for 15% more bytes.
        with zipfile.ZipFile(buf, "w", compresslevel=1) as zf:
            zf.writestr(info, data, compresslevel=1)
        raw = buf.getvalue()
        built = BuiltFile(
            raw, hashlib.sha256(raw).hexdigest(), hashlib.md5(raw).hexdigest(), len(opens)
        )
        with self._lock:
            if key not in self._cache and len(raw) <= self._cache_limit:
                self._cache[key] = built
                self._cache_bytes += len(raw)
                while self._cache_bytes > self._cache_limit:
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= len(old.zip_bytes)
        return built


def _s3_error(status: int, code: str, message: str, key: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Key>{escape(key)}</Key></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


class ArchiveServer:
    """Serves ``/data/spot/...`` like the data.binance.vision bucket (S3 behind a CDN).

    A file that does not exist (yet) answers 404 with S3's ``NoSuchKey`` XML body. Builds run
    in two worker threads (numpy and zlib release the GIL), so a cold month of 1m data never
    holds up the event loop that feeds the WebSocket streams; concurrent requests for the same
    file share one build. REST weights, bans and REST faults do not apply here, as the bucket
    is another host; only ``latency_s`` applies to both.
    """

    def __init__(self, archives: Archives, clock: SimClock, faults: Faults, stats: Stats) -> None:
        self.archives = archives
        self.clock = clock
        self.faults = faults
        self.stats = stats
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="sim-archive")
        self._inflight: dict[tuple[str, str, int, bool], asyncio.Future[BuiltFile | None]] = {}

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route of every archive path."""
        return [web.get("/data/{tail:.*}", self.handle)]

    def close(self) -> None:
        """Stop the build threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET/HEAD of one archive zip or its CHECKSUM."""
        resp = await self._answer(request.path)
        self.stats.record_archive(
            resp.status, len(resp.body) if isinstance(resp.body, bytes) else 0
        )
        return resp

    async def _answer(self, path: str) -> web.Response:
        key = path.lstrip("/")
        parsed = parse_archive_path(path)
        if parsed is None or self.archives.market.config.listing(parsed[0].symbol) is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", key)
        file, checksum = parsed
        if self.faults.latency_s > 0:
            await asyncio.sleep(self.faults.latency_s)
        if self.faults.chance(self.faults.archive_error_rate):
            return _s3_error(503, "SlowDown", "Please reduce your request rate.", key)
        published = self.archives.published_ms(file)
        kind = self.faults.archive_fault(
            file.symbol, interval_path_name(file.interval), file.period, file.name
        )
        if self.clock.now_ms() < published or kind == "missing":
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", key)
        built = await self._build(file, partial=kind == "partial")
        if built is None:  # no candle in the period (before the listing, an outage, ...)
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", key)
        if checksum:
            digest = built.sha256
            if kind == "bad_checksum":
                # A CHECKSUM that lags a re-upload: well-formed, but for other bytes.
                digest = hashlib.sha256(b"stale " + built.zip_bytes).hexdigest()
            body = f"{digest}  {file.name}".encode()
            content_type, etag = "text/plain", hashlib.md5(body).hexdigest()
        elif kind == "truncated":
            body = built.zip_bytes[: len(built.zip_bytes) // 2]
            content_type, etag = "application/zip", hashlib.md5(body).hexdigest()
        else:
            body, content_type, etag = built.zip_bytes, "application/zip", built.md5
        modified = datetime.fromtimestamp(published / 1000, UTC)
        return web.Response(
            body=body,
            headers={
                "Content-Type": content_type,
                "ETag": f'"{etag}"',
                "Last-Modified": format_datetime(modified, usegmt=True),
            },
        )

    async def _build(self, file: ArchiveFile, partial: bool) -> BuiltFile | None:
        key = (file.symbol, file.interval.value, file.start_ms, partial)
        fut = self._inflight.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._pool, self.archives.build, file, partial)
            self._inflight[key] = fut
            fut.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(fut)
