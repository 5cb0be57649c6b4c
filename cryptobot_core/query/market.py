"""MarketQuery: everything the REST API answers, decided here, framework-free.

Range queries, server-side resampling, stats, latest, features, gaps, summaries and the
live updates, as typed rows (``cryptobot_core.query.rows``). Reads go through the store's
repositories; every read is bounded on ``open_time`` (see ``cryptobot_core.store.series``),
so "newest" lookups probe widening windows back from now instead of sorting the whole
history.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptobot_core.concurrency import SingleFlight
from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, dt_to_ms, ms_to_dt
from cryptobot_core.query.params import (
    DEFAULT_HISTORY,
    DEFAULT_LIMIT,
    MAX_EXPORT_SLOTS,
    MAX_MS,
    MAX_WINDOW_SLOTS,
    MIN_MS,
    Source,
    check_limit,
    decode_cursor,
    encode_cursor,
    history_datasets,
    is_empty_range,
    parse_dataset,
    parse_interval,
    served_intervals,
    source_for,
)
from cryptobot_core.query.resample import resample, window_stats
from cryptobot_core.query.rows import (
    CandlePage,
    CandleRow,
    DatasetFreshness,
    DatasetSpan,
    FeaturePage,
    FeatureRow,
    GapReport,
    GapRun,
    HeartbeatAge,
    LatestCandle,
    StatsReport,
    SymbolSummary,
    iso,
)
from cryptobot_core.settings import Settings
from cryptobot_core.store import (
    FEATURES_15M,
    HISTORICAL_15M,
    STREAMING_1M,
    CandleStore,
    Store,
    history_collection,
)
from cryptobot_core.store.codec import stored_float, stored_text
from cryptobot_core.store.features import FEATURE_FIELDS
from cryptobot_core.store.series import OPEN_TIME_ONLY, SeriesCollection

# How long a latest answer is reused after its read began (the promise is 250 ms).
LATEST_REUSE_S = 0.1

# Live updates re-read this far behind the newest candle already sent.
UPDATE_LOOKBACK_MS = 3 * 60_000
# Windows (ms back from now) probed to find the newest candle, widest last (None = all).
_NEWEST_WINDOWS: tuple[int | None, ...] = (2 * 3_600_000, 2 * 86_400_000, 40 * 86_400_000, None)
# Only what a candle response needs: less for the store to send and for pymongo to decode.
CANDLE_PROJECTION = {
    "_id": 0,
    "open_time": 1,
    "trades": 1,
    "is_closed": 1,
    **dict.fromkeys(DECIMAL_FIELDS, 1),
}
UPDATE_PROJECTION = {**CANDLE_PROJECTION, "ingested_at": 1, "event_time": 1}
_HEARTBEAT_ROLES = ("producer", "consumer")


class UnknownSymbolError(ValidationError):
    """No dataset holds any candle of this symbol."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        super().__init__(f"no data for symbol {symbol!r}")


def _now_ms() -> int:
    return dt_to_ms(datetime.now(UTC))


def _ceil(interval: Interval, ms: int) -> int:
    t = interval.floor(ms)
    return t if t == ms else interval.open_after(t)


def _end_of(interval: Interval, ms: int) -> int:
    """End (exclusive) of the interval holding the instant just before ``ms``."""
    return interval.open_after(interval.floor(ms - 1))


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = stored_float(value)
    return number if math.isfinite(number) else None


def candle_row(doc: Mapping[str, Any], interval: Interval) -> CandleRow:
    """A stored candle document as a served row (exact decimal strings, ISO times)."""
    open_time = doc["open_time"]
    return CandleRow(
        iso(open_time),
        iso(open_time + timedelta(milliseconds=interval.ms - 1)),
        stored_text(doc["open"]),
        stored_text(doc["high"]),
        stored_text(doc["low"]),
        stored_text(doc["close"]),
        stored_text(doc["volume"]),
        stored_text(doc["quote_volume"]),
        stored_text(doc["taker_buy_base_volume"]),
        stored_text(doc["taker_buy_quote_volume"]),
        int(doc["trades"]),
        bool(doc.get("is_closed", True)),
    )


@dataclass(frozen=True, slots=True)
class FreshTail:
    """Where history ends and how far the 1m stream reaches past it (epoch ms)."""

    final_ms: int  # end of the newest history candle: later buckets are provisional
    newest_ms: int  # open time of the newest stream candle
    horizon: int  # end of the newest closed stream candle: buckets up to here can close


@dataclass
class MarketQuery:
    """Read-only queries over the candle, feature and heartbeat collections of one store.

    ``history_intervals`` are the intervals kept as history (``Settings.history_intervals``):
    each is served as stored, and the others are resampled (see ``params.source_for``).
    """

    store: Store
    history_intervals: tuple[Interval, ...] = DEFAULT_HISTORY
    now_ms: Callable[[], int] = _now_ms
    summary_ttl_s: float = 30.0
    _summary: tuple[float, list[SymbolSummary]] | None = field(default=None, init=False)
    _summary_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _newest_hint: dict[tuple[str, str, bool], int] = field(default_factory=dict, init=False)
    _flights: SingleFlight = field(default_factory=SingleFlight, init=False)
    # latest's last answer per (symbol, interval) and when its read began (monotonic s).
    _recent: dict[tuple[str, Interval], tuple[float, LatestCandle]] = field(
        default_factory=dict, init=False
    )
    _candles: dict[str, CandleStore] = field(default_factory=dict, init=False)
    _series: dict[str, SeriesCollection] = field(default_factory=dict, init=False)
    _granularity: dict[str, Interval] = field(default_factory=dict, init=False)
    served: tuple[Interval, ...] = field(default=(), init=False)
    datasets: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.history_intervals = tuple(self.history_intervals)
        self.served = served_intervals(self.history_intervals)
        self.datasets = history_datasets(self.history_intervals)
        self._granularity = {
            STREAMING_1M: Interval.M1,
            **{history_collection(i): i for i in self.history_intervals},
        }
        self._candles = {
            **{history_collection(i): self.store.history(i) for i in self.history_intervals},
            STREAMING_1M: self.store.stream,
        }
        self._series = {**self._candles, FEATURES_15M: self.store.features}

    @classmethod
    def for_settings(cls, store: Store, settings: Settings) -> MarketQuery:
        """Queries over ``store`` serving the history intervals ``settings`` keep."""
        return cls(store, history_intervals=tuple(settings.history_intervals))

    def source(self, interval: Interval) -> Source:
        """The stored series ``interval`` is served from; ValidationError when none is."""
        if interval not in self.served:
            parse_interval(interval.value, self.served)
        return source_for(interval, self.history_intervals)

    # -- building blocks ------------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        self.store.ping()

    def _find(
        self,
        collection: str,
        symbol: str,
        lo_ms: int,
        hi_ms: int,
        *,
        closed_only: bool = False,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return self._series[collection].range_docs(
            symbol,
            ms_to_dt(max(lo_ms, MIN_MS)),
            ms_to_dt(min(hi_ms, MAX_MS)),
            closed_only=closed_only,
            fields=projection,
        )

    def _newest(
        self, collection: str, symbol: str, *, closed_only: bool = False
    ) -> dict[str, Any] | None:
        """The newest document of ``symbol`` (probing widening windows back from now).

        Concurrent callers asking the same question share one read: twenty clients polling
        ``latest`` cost the store one query at a time, not twenty queued ones. An answer is
        never older than the read in flight when the caller arrived.
        """
        key = (collection, symbol, closed_only)
        return self._flights.do(key, lambda: self._read_newest(collection, symbol, key))

    def _read_newest(
        self, collection: str, symbol: str, key: tuple[str, str, bool]
    ) -> dict[str, Any] | None:
        hint = self._newest_hint.get(key)
        # The last newest seen is a lower bound while nothing is deleted: probe from there
        # first, then widening windows back from now (re-checked, so never a stale answer).
        floors: list[int | None] = [] if hint is None else [hint]
        now = self.now_ms()
        floors += [now - w if w is not None else None for w in _NEWEST_WINDOWS]
        found = self._series[collection].newest_doc(
            symbol,
            [None if f is None else ms_to_dt(max(f, MIN_MS)) for f in floors],
            closed_only=key[2],
            fields=CANDLE_PROJECTION,
        )
        if found is None:
            self._newest_hint.pop(key, None)
            return None
        self._newest_hint[key] = dt_to_ms(found["open_time"])
        return found

    def newest_open_ms(self, collection: str, symbol: str) -> int | None:
        """Open time (ms) of the newest document of ``symbol`` in ``collection``, if any."""
        doc = self._newest(collection, symbol)
        return None if doc is None else dt_to_ms(doc["open_time"])

    def has_symbol(self, symbol: str) -> bool:
        """True when any dataset holds a document of ``symbol``."""
        return any(series.has_symbol(symbol) for series in self._series.values())

    def require_symbol(self, symbol: str) -> None:
        """Raise UnknownSymbolError unless some dataset has the symbol."""
        if not self.has_symbol(symbol):
            raise UnknownSymbolError(symbol)

    # -- candles --------------------------------------------------------------------------

    def candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        include_open: bool = False,
    ) -> CandlePage:
        """A page of candles with open_time in [start, end), oldest first.

        Without start (and cursor) the newest ``limit`` candles before ``end`` come back.
        """
        check_limit(limit)
        source = self.source(interval)
        if cursor:
            start = decode_cursor(cursor)
        native = source.interval == interval
        collection, source_step = source.collection, source.interval.ms
        closed_only = native and not include_open
        newest = self._newest(collection, symbol, closed_only=closed_only)
        tail = self._fresh_tail(symbol, newest, source) if source.is_history else None
        if newest is None and tail is None:
            self.require_symbol(symbol)
            return CandlePage(symbol, interval, collection, [], None)
        if is_empty_range(start, end):
            return CandlePage(symbol, interval, collection, [], None)
        # A page reads at most MAX_WINDOW_SLOTS source candles: a coarse interval gets fewer
        # buckets per page (1w of 15m: 148) and a next_cursor, never a scan of all history.
        limit = min(limit, max(1, MAX_WINDOW_SLOTS * source_step // interval.max_ms))
        next_cursor = None
        if tail is not None:
            newest_ms, data_end, horizon = (
                tail.newest_ms,
                tail.newest_ms + Interval.M1.ms,
                tail.horizon,
            )
        else:
            assert newest is not None
            newest_ms = dt_to_ms(newest["open_time"])
            data_end = newest_ms + source_step
            horizon = (
                MAX_MS if native else self._closed_horizon(collection, symbol, newest, source_step)
            )
        if start is None:
            ref = min(end if end is not None else data_end, data_end)
            hi = _end_of(interval, ref)
            if (not native or tail is not None) and not include_open:
                # The newest page ends at the last bucket the source has completed.
                hi = min(hi, interval.floor(horizon))
            lo = interval.shift(hi, -limit)
        else:
            lo = _ceil(interval, start)
            hi = interval.shift(lo, limit)
            if end is not None:
                hi = min(hi, _end_of(interval, end))
            more = end is None or hi < end
            if more and hi <= newest_ms and hi < MAX_MS:
                next_cursor = encode_cursor(hi)
        if hi <= lo:
            return CandlePage(symbol, interval, collection, [], next_cursor)
        if tail is not None:
            docs = self._stitched_docs(collection, symbol, lo, hi, tail)
            rows = resample(docs, interval, horizon, tail.final_ms)
            if not include_open:
                rows = [row for row in rows if row.is_closed]
            return CandlePage(symbol, interval, collection, rows, next_cursor)
        docs = self._find(
            collection, symbol, lo, hi, closed_only=closed_only, projection=CANDLE_PROJECTION
        )
        if native:
            rows = [candle_row(doc, interval) for doc in docs]
        else:
            rows = resample(docs, interval, horizon)
            if not include_open:
                rows = [row for row in rows if row.is_closed]
        return CandlePage(symbol, interval, collection, rows, next_cursor)

    def _fresh_tail(
        self, symbol: str, history_newest: Mapping[str, Any] | None, source: Source
    ) -> FreshTail | None:
        """The 1m stream past the end of ``source``'s history, if it reaches past it.

        History holds finished UTC days; the stream has today's minutes. Series built from
        history continue with the stream after its end, and the buckets past that end are
        marked provisional until the day's history lands (the reconciliation check holds
        1m and 15m equal).
        """
        final = (
            dt_to_ms(history_newest["open_time"]) + source.interval.ms
            if history_newest is not None
            else MIN_MS
        )
        streamed = self._newest(STREAMING_1M, symbol)
        if streamed is None:
            return None
        newest_ms = dt_to_ms(streamed["open_time"])
        if newest_ms < final:
            return None
        closed = (
            streamed
            if streamed.get("is_closed", True)
            else self._newest(STREAMING_1M, symbol, closed_only=True)
        )
        horizon = dt_to_ms(closed["open_time"]) + Interval.M1.ms if closed else final
        return FreshTail(final, newest_ms, max(horizon, final))

    def _stitched_docs(
        self, collection: str, symbol: str, lo: int, hi: int, tail: FreshTail
    ) -> list[dict[str, Any]]:
        """History in [lo, hi) up to its end, then 1m stream candles from there on.

        The stream part reads at most MAX_WINDOW_SLOTS minutes (69 days) back from ``hi``.
        """
        docs: list[dict[str, Any]] = []
        if lo < tail.final_ms:
            docs = self._find(
                collection, symbol, lo, min(hi, tail.final_ms), projection=CANDLE_PROJECTION
            )
        stream_lo = max(lo, tail.final_ms, hi - MAX_WINDOW_SLOTS * Interval.M1.ms)
        if stream_lo < hi:
            docs += self._find(STREAMING_1M, symbol, stream_lo, hi, projection=CANDLE_PROJECTION)
        return docs

    def export_window(
        self, symbol: str, interval: Interval, start: int | None, end: int | None
    ) -> tuple[int, int] | None:
        """The [start, end) one export request covers; None when the symbol has none here.

        Without start it reaches back MAX_EXPORT_SLOTS source candles. A longer window is
        narrowed like /stats: its end to the newest stored candle, then its start to
        MAX_EXPORT_SLOTS before that. The caller reports the window it covered.
        """
        source = self.source(interval)
        span = MAX_EXPORT_SLOTS * source.interval.ms
        if is_empty_range(start, end):
            self.require_symbol(symbol)
            assert start is not None
            return start, start
        newest = self._newest(source.collection, symbol, closed_only=True)
        return self._window(newest, symbol, interval.max_ms, start, end, span, span)

    def _closed_horizon(
        self, collection: str, symbol: str, newest: Mapping[str, Any], step: int
    ) -> int:
        # Everything before the end of the newest closed source candle is final.
        closed = (
            newest
            if newest.get("is_closed", True)
            else self._newest(collection, symbol, closed_only=True)
        )
        return dt_to_ms(closed["open_time"]) + step if closed else MIN_MS

    def latest_intervals(self) -> tuple[Interval, ...]:
        """Intervals ``latest`` answers: 1m (the stream) and every history interval."""
        return tuple(i for i in Interval if i is Interval.M1 or i in self.history_intervals)

    def latest(self, symbol: str, interval: Interval) -> LatestCandle:
        """The newest stored candle (open or closed): 1m from the stream, else history."""
        allowed = self.latest_intervals()
        if interval not in allowed:
            raise ValidationError(
                f"latest is served for the stored intervals "
                f"{', '.join(i.value for i in allowed)}; got {interval.value!r}"
            )
        collection = STREAMING_1M if interval is Interval.M1 else history_collection(interval)
        began = time.monotonic()
        doc = self._newest(collection, symbol)
        if doc is None:
            self.require_symbol(symbol)
            return LatestCandle(symbol, interval, None)
        answer = LatestCandle(symbol, interval, candle_row(doc, interval))
        self._recent[(symbol, interval)] = (began, answer)
        return answer

    def recent_latest(self, symbol: str, interval: Interval) -> LatestCandle | None:
        """``latest``'s answer when one was read in the last ``LATEST_REUSE_S``; no I/O.

        Clients poll ``latest``; an answer whose read began less than 0.1 s ago is reused
        without the store or a worker thread. It misses at most the writes of that 0.1 s
        plus one read, inside the 250 ms the API promises (docs/api.md).
        """
        hit = self._recent.get((symbol, interval))
        if hit is None or time.monotonic() - hit[0] >= LATEST_REUSE_S:
            return None
        return hit[1]

    # -- stats, features, gaps ------------------------------------------------------------

    def _window(
        self,
        newest: Mapping[str, Any] | None,
        symbol: str,
        step: int,
        start: int | None,
        end: int | None,
        default_span: int,
        max_span: int,
        tail_end: int | None = None,
    ) -> tuple[int, int] | None:
        """Resolve an optional [start, end) window; None when the symbol has no data here.

        A window longer than ``max_span`` is narrowed: its end to the newest stored data, then
        its start to ``max_span`` before that end. The caller reports the window it covered.
        ``newest`` is the newest closed candle of the source, ``tail_end`` where the 1m stream
        past history ends, when it does.
        """
        if newest is None and tail_end is None:
            self.require_symbol(symbol)
            return None
        data_end = dt_to_ms(newest["open_time"]) + step if newest is not None else MIN_MS
        if tail_end is not None:
            data_end = max(data_end, tail_end)
        if end is None:
            end = data_end
            if start is not None and start >= end:
                end = start + step
        if start is None:
            start = max(end - default_span, MIN_MS)
        if end - start > max_span:
            end = max(min(end, data_end), start)
            start = max(start, end - max_span)
        return start, end

    def stats(
        self, symbol: str, interval: Interval, *, start: int | None = None, end: int | None = None
    ) -> StatsReport:
        """Return, volatility, high/low and volume over closed candles in [start, end)."""
        source = self.source(interval)
        collection, source_step = source.collection, source.interval.ms
        default_span = max(86_400_000, 30 * interval.max_ms)
        newest = self._newest(collection, symbol, closed_only=True)
        tail = self._fresh_tail(symbol, newest, source) if source.is_history else None
        window = self._window(
            newest,
            symbol,
            interval.max_ms,
            start,
            end,
            default_span,
            MAX_WINDOW_SLOTS * source_step,
            tail_end=tail.horizon if tail is not None else None,
        )
        if window is None:
            return StatsReport(symbol, interval, None, None, window_stats([]))
        lo, hi = window
        if tail is not None:
            docs = self._stitched_docs(collection, symbol, _ceil(interval, lo), hi, tail)
            rows = [r for r in resample(docs, interval, tail.horizon, tail.final_ms) if r.is_closed]
            return StatsReport(
                symbol,
                interval,
                iso(lo),
                iso(hi),
                window_stats(rows),
                any(r.provisional for r in rows),
            )
        docs = self._find(
            collection,
            symbol,
            _ceil(interval, lo),
            hi,
            closed_only=True,
            projection=CANDLE_PROJECTION,
        )
        if source.interval == interval:
            rows = [candle_row(d, interval) for d in docs]
        else:
            horizon = self._closed_horizon(collection, symbol, docs[-1], source_step) if docs else 0
            rows = [r for r in resample(docs, interval, horizon) if r.is_closed]
        return StatsReport(symbol, interval, iso(lo), iso(hi), window_stats(rows))

    def features(
        self,
        symbol: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> FeaturePage:
        """Feature rows of ``symbol`` with open_time in [start, end), oldest first."""
        check_limit(limit)
        step = Interval.M15.ms
        if is_empty_range(start, end):
            self.require_symbol(symbol)
            return FeaturePage(symbol, [])
        if start is None:
            newest = self._newest(FEATURES_15M, symbol)
            if newest is None:
                self.require_symbol(symbol)
                return FeaturePage(symbol, [])
            ref = dt_to_ms(newest["open_time"]) + step
            hi = min(ref, end) if end is not None else ref
            lo = hi - limit * step
        else:
            hi = _ceil(Interval.M15, start) + limit * step
            if end is not None:
                hi = min(hi, end)
            lo = start
        docs = self._find(FEATURES_15M, symbol, lo, hi)
        if not docs:
            self.require_symbol(symbol)
        rows = [
            FeatureRow(
                iso(doc["open_time"]),
                stored_text(doc["close"]) if doc.get("close") is not None else None,
                *(_float_or_none(doc.get(name)) for name in FEATURE_FIELDS),
            )
            for doc in docs[-limit:]
        ]
        return FeaturePage(symbol, rows)

    def gaps(
        self, symbol: str, dataset: str, *, start: int | None = None, end: int | None = None
    ) -> GapReport:
        """Runs of missing closed candles in [start, end), up to the newest closed candle.

        Without start the window is the last 24 h of data, from its first candle on.
        """
        collection = parse_dataset(dataset, self.datasets)
        interval = self._granularity[collection]
        step = interval.ms
        newest = self._newest(collection, symbol, closed_only=True)
        window = self._window(newest, symbol, step, start, end, 86_400_000, MAX_WINDOW_SLOTS * step)
        if window is None:
            return GapReport(symbol, dataset, None, None, [])
        lo, hi = window
        horizon = dt_to_ms(newest["open_time"]) + step if newest else lo
        docs = self._find(
            collection, symbol, lo, min(hi, horizon), closed_only=True, projection=OPEN_TIME_ONLY
        )
        present = {dt_to_ms(d["open_time"]) for d in docs}
        if start is None and present:
            # By default only gaps inside the data: the window opens at its first candle.
            lo = min(present)
        runs: list[GapRun] = []
        run_start: int | None = None
        t = _ceil(interval, lo)
        stop = min(hi, horizon)
        while t < stop:
            if t not in present:
                if run_start is None:
                    run_start = t
            elif run_start is not None:
                runs.append(GapRun(iso(run_start), iso(t), (t - run_start) // step))
                run_start = None
            t += step
        if run_start is not None:
            runs.append(GapRun(iso(run_start), iso(stop), (stop - run_start) // step))
        return GapReport(symbol, dataset, iso(lo), iso(hi), runs)

    # -- summaries and health -------------------------------------------------------------

    def symbols(self) -> list[SymbolSummary]:
        """Every symbol with data: first/last open time and count per dataset (cached)."""
        with self._summary_lock:
            now = time.monotonic()
            if self._summary and now - self._summary[0] < self.summary_ttl_s:
                return self._summary[1]
            by_symbol: dict[str, SymbolSummary] = {}
            for label, collection in self.datasets.items():
                for span in self._candles[collection].symbol_spans():
                    entry = by_symbol.setdefault(span.symbol, SymbolSummary(span.symbol, {}))
                    entry.datasets[label] = DatasetSpan(
                        iso(span.first_open), iso(span.last_open), span.count
                    )
            result = [by_symbol[s] for s in sorted(by_symbol)]
            self._summary = (now, result)
            return result

    def freshness(self, symbols: Iterable[str]) -> dict[str, DatasetFreshness]:
        """Newest open time, its age and the symbol count, per dataset, over ``symbols``."""
        now = self.now_ms()
        out: dict[str, DatasetFreshness] = {}
        for collection in (HISTORICAL_15M, STREAMING_1M, FEATURES_15M):
            newest_ms: int | None = None
            count = 0
            for symbol in symbols:
                ms = self.newest_open_ms(collection, symbol)
                if ms is None:
                    continue
                count += 1
                newest_ms = ms if newest_ms is None else max(newest_ms, ms)
            out[collection] = DatasetFreshness(
                iso(newest_ms) if newest_ms is not None else None,
                (now - newest_ms) / 1000 if newest_ms is not None else None,
                count,
            )
        return out

    def heartbeats(self) -> dict[str, HeartbeatAge | None]:
        """Last heartbeat of the stream producer and consumer, with its age."""
        now = self.now_ms()
        docs = self.store.heartbeats.read(_HEARTBEAT_ROLES)
        out: dict[str, HeartbeatAge | None] = {}
        for role in _HEARTBEAT_ROLES:
            doc = docs.get(role)
            updated = doc.get("updated_at") if doc else None
            out[role] = (
                HeartbeatAge(iso(updated), (now - dt_to_ms(updated)) / 1000)
                if isinstance(updated, datetime)
                else None
            )
        return out

    # -- live updates ---------------------------------------------------------------------

    def updates(
        self, symbol: str, since_ms: int, seen: dict[int, datetime]
    ) -> tuple[list[CandleRow], int]:
        """1m candles from shortly before ``since_ms`` whose stored version is not in ``seen``.

        ``seen`` maps open time to the ``ingested_at`` already delivered; it is updated.
        Returns the new candles (oldest first) and the ``since_ms`` for the next call.
        """
        # Look a little behind the newest candle sent: a minute's closing update can land
        # after the next minute's first one (batched, at-least-once delivery).
        lookback = since_ms - UPDATE_LOOKBACK_MS
        docs = self._find(STREAMING_1M, symbol, lookback, MAX_MS, projection=UPDATE_PROJECTION)
        fresh = []
        for doc in docs:
            open_ms = dt_to_ms(doc["open_time"])
            stamp = doc.get("ingested_at") or doc.get("event_time") or doc["open_time"]
            if seen.get(open_ms) != stamp:
                seen[open_ms] = stamp
                fresh.append(candle_row(doc, Interval.M1))
        next_since = max(seen) if seen else since_ms
        for key in [k for k in seen if k < next_since - UPDATE_LOOKBACK_MS]:
            del seen[key]
        return fresh, next_since
