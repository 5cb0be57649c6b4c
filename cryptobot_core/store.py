"""MongoDB access: collection names, indexes and idempotent candle upserts.

Every write is idempotent on the unique key (symbol, open_time). ``upsert`` (the stream) makes
replays harmless: a stored candle is replaced only by a strictly newer version of itself,
where "newer" means closed beats open, then a later event_time wins. ``insert_missing``
(history, which is final data) adds what is not stored yet and never rewrites a candle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, PyMongoError

from cryptobot_core.errors import StoreError, StoreUnavailable
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings

HISTORICAL_15M = "historical_data_15m"
STREAMING_1M = "streaming_data_1m"
FEATURES_15M = "candle_features_15m"
HEARTBEATS = "stream_heartbeats"
DEAD_LETTERS = "dead_letters"
CANDLE_COLLECTIONS = (HISTORICAL_15M, STREAMING_1M)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def connect(settings: Settings, *, timeout_ms: int | None = None) -> MongoClient[dict[str, Any]]:
    """A tz-aware MongoClient for the configured (or embedded) store; connects lazily."""
    timeout = timeout_ms or settings.mongo_timeout_ms
    return MongoClient(
        settings.effective_mongo_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=max(timeout * 6, 30_000),
        appname="cryptobot",
    )


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn pymongo failures into StoreUnavailable / StoreError with a readable message."""
    try:
        yield
    except (AutoReconnect, ConnectionFailure) as exc:
        raise StoreUnavailable(f"document store unreachable while {what}: {exc}") from exc
    except PyMongoError as exc:
        raise StoreError(f"document store error while {what}: {exc}") from exc


def _guarded_update(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Update pipeline that replaces the stored doc only with a strictly newer version."""
    new_event = doc["event_time"] or _EPOCH
    missing = {"$eq": [{"$type": "$close_time"}, "missing"]}
    later = {"$gt": [{"$literal": new_event}, {"$ifNull": ["$event_time", _EPOCH]}]}
    if doc["is_closed"]:
        # A closed candle beats an open one, or an older closed one.
        wins: dict[str, Any] = {"$or": [missing, {"$ne": ["$is_closed", True]}, later]}
    else:
        wins = {"$or": [missing, {"$and": [{"$ne": ["$is_closed", True]}, later]}]}
    return [{"$replaceWith": {"$cond": [wins, {"$literal": doc}, "$$ROOT"]}}]


@dataclass(frozen=True)
class WriteResult:
    """Counts from one bulk upsert."""

    inserted: int
    updated: int
    unchanged: int


class CandleStore:
    """Candles of one collection, keyed by (symbol, open_time)."""

    def __init__(self, db: Database[dict[str, Any]], collection: str) -> None:
        self.collection: Collection[dict[str, Any]] = db[collection]

    def ensure_indexes(self) -> None:
        """Create the unique (symbol, open_time) index (idempotent)."""
        with store_errors(f"creating indexes on {self.collection.name}"):
            self.collection.create_index(
                [("symbol", ASCENDING), ("open_time", ASCENDING)],
                unique=True,
                name="symbol_open_time",
            )

    def upsert(self, candles: Iterable[Candle]) -> WriteResult:
        """Idempotently upsert candles; an older version of a candle never replaces a newer one."""
        now = datetime.now(UTC)
        ops = []
        for candle in candles:
            doc = candle.to_document(ingested_at=now)
            key = {"symbol": candle.symbol, "open_time": candle.open_time}
            ops.append(UpdateOne(key, _guarded_update(doc), upsert=True))
        if not ops:
            return WriteResult(0, 0, 0)
        with store_errors(f"writing {len(ops)} candles to {self.collection.name}"):
            res = self.collection.bulk_write(ops, ordered=False)
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
            span = {
                "$gte": min(c.open_time for c in group),
                "$lte": max(c.open_time for c in group),
            }
            with store_errors(f"reading {self.collection.name}"):
                stored = {
                    d["open_time"]
                    for d in self.collection.find(
                        {"symbol": symbol, "open_time": span}, {"_id": 0, "open_time": 1}
                    )
                }
            fresh = [c.to_document(ingested_at=now) for c in group if c.open_time not in stored]
            added = insert_ignoring_duplicates(self.collection, fresh)
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
        query: dict[str, Any] = {"symbol": symbol}
        span: dict[str, Any] = {}
        if start is not None:
            span["$gte"] = start
        if end is not None:
            span["$lt"] = end
        if span:
            query["open_time"] = span
        if closed_only:
            query["is_closed"] = True
        order = DESCENDING if descending else ASCENDING
        with store_errors(f"reading {self.collection.name}"):
            cursor = self.collection.find(query, {"_id": 0}).sort("open_time", order).limit(limit)
            return [Candle.from_document(doc) for doc in cursor]

    def latest(self, symbol: str) -> Candle | None:
        """The newest candle of ``symbol`` (open or closed), or None."""
        found = self.find(symbol, limit=1, descending=True)
        return found[0] if found else None

    def open_times(self, symbol: str, start: datetime, end: datetime) -> list[datetime]:
        """Open times present for ``symbol`` in [start, end) (closed candles only)."""
        with store_errors(f"reading {self.collection.name}"):
            cursor = self.collection.find(
                {"symbol": symbol, "open_time": {"$gte": start, "$lt": end}, "is_closed": True},
                {"_id": 0, "open_time": 1},
            ).sort("open_time", ASCENDING)
            return [doc["open_time"] for doc in cursor]

    def symbols(self) -> list[str]:
        """Distinct symbols in this collection."""
        with store_errors(f"reading {self.collection.name}"):
            return sorted(self.collection.distinct("symbol"))

    def delete_all(self) -> int:
        """Remove every candle (used by `cryptobot stream reset`)."""
        with store_errors(f"clearing {self.collection.name}"):
            return self.collection.delete_many({}).deleted_count


def insert_ignoring_duplicates(coll: Collection[dict[str, Any]], docs: list[dict[str, Any]]) -> int:
    """Insert ``docs``; those whose unique key is already stored are skipped. Returns how many were new."""
    if not docs:
        return 0
    try:
        with store_errors(f"writing {len(docs)} documents to {coll.name}"):
            return len(coll.insert_many(docs, ordered=False).inserted_ids)
    except StoreError as exc:
        cause = exc.__cause__
        if isinstance(cause, BulkWriteError):
            errors = cause.details.get("writeErrors", [])
            if errors and all(e.get("code") == 11000 for e in errors):
                return int(cause.details.get("nInserted", len(docs) - len(errors)))
        raise
