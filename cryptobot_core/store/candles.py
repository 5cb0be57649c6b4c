"""Candles of one collection (history or stream): the write rules, the document mapping, reads.

Every write is idempotent on the unique key (symbol, open_time). ``upsert`` (the stream) makes
replays harmless: a stored candle is replaced only by a strictly newer version of itself,
where "newer" means closed beats open, then a later event_time wins. ``insert_missing``
(history, which is final data) adds what is not stored yet and never rewrites a candle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne

from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, Candle, Source
from cryptobot_core.store.client import (
    Document,
    WriteResult,
    insert_ignoring_duplicates,
    store_errors,
)
from cryptobot_core.store.codec import stored_decimal, to_stored
from cryptobot_core.store.series import OPEN_TIME_ONLY, SeriesCollection

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def candle_document(candle: Candle, ingested_at: datetime | None = None) -> Document:
    """The stored document of a candle (Decimal128 values, BSON dates)."""
    doc: Document = {
        "symbol": candle.symbol,
        "interval": candle.interval.value,
        "open_time": candle.open_time,
        "close_time": candle.close_time,
        "trades": candle.trades,
        "is_closed": candle.is_closed,
        "source": candle.source.value,
        "event_time": candle.event_time,
        "ingested_at": ingested_at or datetime.now(UTC),
    }
    for name in DECIMAL_FIELDS:
        doc[name] = to_stored(getattr(candle, name))
    return doc


def candle_from_document(doc: Mapping[str, Any]) -> Candle:
    """Rebuild a candle from its stored document."""
    return Candle(
        symbol=doc["symbol"],
        interval=Interval.parse(doc["interval"]),
        open_time=doc["open_time"],
        close_time=doc["close_time"],
        trades=doc["trades"],
        is_closed=doc.get("is_closed", True),
        source=Source(doc.get("source", "rest")),
        event_time=doc.get("event_time"),
        **{name: stored_decimal(doc[name]) for name in DECIMAL_FIELDS},
    )


def _guarded_update(doc: Document) -> list[Document]:
    """Update pipeline that replaces the stored doc only with a strictly newer version."""
    new_event = doc["event_time"] or _EPOCH
    missing = {"$eq": [{"$type": "$close_time"}, "missing"]}
    later = {"$gt": [{"$literal": new_event}, {"$ifNull": ["$event_time", _EPOCH]}]}
    if doc["is_closed"]:
        # A closed candle beats an open one, or an older closed one.
        wins: Document = {"$or": [missing, {"$ne": ["$is_closed", True]}, later]}
    else:
        wins = {"$or": [missing, {"$and": [{"$ne": ["$is_closed", True]}, later]}]}
    return [{"$replaceWith": {"$cond": [wins, {"$literal": doc}, "$$ROOT"]}}]


@dataclass(frozen=True)
class SymbolSpan:
    """First and last open time and the candle count of one symbol in one collection."""

    symbol: str
    first_open: datetime
    last_open: datetime
    count: int


class CandleStore(SeriesCollection):
    """Candles of one collection, keyed by (symbol, open_time): ``CandleStore(db, name)``."""

    def upsert(self, candles: Iterable[Candle]) -> WriteResult:
        """Idempotently upsert candles; an older version of a candle never replaces a newer one."""
        now = datetime.now(UTC)
        ops = []
        for candle in candles:
            doc = candle_document(candle, ingested_at=now)
            key = {"symbol": candle.symbol, "open_time": candle.open_time}
            ops.append(UpdateOne(key, _guarded_update(doc), upsert=True))
        if not ops:
            return WriteResult(0, 0, 0)
        with store_errors(f"writing {len(ops)} candles to {self.name}"):
            res = self._collection.bulk_write(ops, ordered=False)
        inserted = res.upserted_count
        return WriteResult(inserted, res.modified_count, len(ops) - inserted - res.modified_count)

    def insert_missing(self, candles: Iterable[Candle]) -> WriteResult:
        """Insert the candles not stored yet and never rewrite one: the write for final data.

        One indexed range read per symbol finds what is stored; the rest is inserted. Plain
        inserts, not upserts: about a third of the cost on SecantusDB. A key that a concurrent
        writer inserted meanwhile counts as already stored (the unique index refuses it).
        """
        by_symbol: dict[str, list[Candle]] = {}
        for candle in candles:
            by_symbol.setdefault(candle.symbol, []).append(candle)
        now = datetime.now(UTC)
        inserted = unchanged = 0
        for symbol, group in by_symbol.items():
            stored = self.stored_open_times(
                symbol, min(c.open_time for c in group), max(c.open_time for c in group)
            )
            fresh = [candle_document(c, now) for c in group if c.open_time not in stored]
            added = insert_ignoring_duplicates(self._collection, fresh)
            inserted += added
            unchanged += len(group) - added
        return WriteResult(inserted, 0, unchanged)

    def find(
        self,
        symbol: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int = 0,
        descending: bool = False,
        closed_only: bool = False,
    ) -> list[Candle]:
        """Candles of ``symbol`` with open_time in [start, end), ordered by open_time."""
        query: Document = {"symbol": symbol}
        span: Document = {}
        if start is not None:
            span["$gte"] = start
        if end is not None:
            span["$lt"] = end
        if span:
            query["open_time"] = span
        if closed_only:
            query["is_closed"] = True
        order = DESCENDING if descending else ASCENDING
        with store_errors(f"reading {self.name}"):
            cursor = self._collection.find(query, {"_id": 0}).sort("open_time", order).limit(limit)
            return [candle_from_document(doc) for doc in cursor]

    def latest(self, symbol: str) -> Candle | None:
        """The newest candle of ``symbol`` (open or closed), or None."""
        found = self.find(symbol, limit=1, descending=True)
        return found[0] if found else None

    def open_times(self, symbol: str, start: datetime, end: datetime) -> list[datetime]:
        """Open times present for ``symbol`` in [start, end) (closed candles only)."""
        with store_errors(f"reading {self.name}"):
            cursor = self._collection.find(
                {"symbol": symbol, "open_time": {"$gte": start, "$lt": end}, "is_closed": True},
                OPEN_TIME_ONLY,
            ).sort("open_time", ASCENDING)
            return [doc["open_time"] for doc in cursor]

    def symbols(self) -> list[str]:
        """Distinct symbols in this collection."""
        with store_errors(f"reading {self.name}"):
            return sorted(self._collection.distinct("symbol"))

    def symbol_spans(self) -> list[SymbolSpan]:
        """First/last open time and count of every symbol (one aggregation over the collection)."""
        pipeline = [
            {
                "$group": {
                    "_id": "$symbol",
                    "first": {"$min": "$open_time"},
                    "last": {"$max": "$open_time"},
                    "count": {"$sum": 1},
                }
            },
        ]
        with store_errors(f"summarising {self.name}"):
            groups = list(self._collection.aggregate(pipeline))
        return [
            SymbolSpan(g["_id"], g["first"], g["last"], int(g["count"]))
            for g in groups
            if isinstance(g["_id"], str)
        ]

    def newest_event_doc(self) -> Document | None:
        """event_time and close_time of the candle with the newest event, over all symbols."""
        with store_errors(f"observing {self.name}"):
            return self._collection.find_one(
                {}, {"event_time": 1, "close_time": 1}, sort=[("event_time", -1)]
            )

    def estimated_count(self) -> int:
        """About how many candles are stored (from collection metadata: no scan)."""
        with store_errors(f"observing {self.name}"):
            return self._collection.estimated_document_count()

    def delete_all(self) -> int:
        """Remove every candle (used by `cryptobot stream reset`)."""
        with store_errors(f"clearing {self.name}"):
            return self._collection.delete_many({}).deleted_count
