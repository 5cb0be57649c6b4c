"""Gap records: spans the live stream missed, and candles the exchange has none of in history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.models import ms_to_dt
from cryptobot_core.store.client import Document, insert_ignoring_duplicates, store_errors
from cryptobot_core.store.names import STREAM_GAPS
from cryptobot_core.store.series import OPEN_TIME_ONLY, SeriesCollection


@dataclass(frozen=True)
class StreamGap:
    """A span of minutes the live stream missed (a reconnect, a restart); repair fills it."""

    id: str
    symbols: tuple[str, ...]
    missed_from: datetime
    missed_to: datetime
    reason: str
    detected_at: datetime
    repaired: bool = False

    @classmethod
    def of_span(
        cls, symbols: Iterable[str], missed_from_ms: int, missed_to_ms: int, reason: str
    ) -> StreamGap:
        """A new gap; its id comes from the span, so recording it twice keeps one."""
        names = tuple(sorted(symbols))
        return cls(
            id=f"{missed_from_ms}-{missed_to_ms}-{','.join(names)}"[:500],
            symbols=names,
            missed_from=ms_to_dt(missed_from_ms),
            missed_to=ms_to_dt(missed_to_ms),
            reason=reason,
            detected_at=datetime.now(UTC),
        )

    def to_document(self) -> Document:
        """The stored document."""
        return {
            "_id": self.id,
            "symbols": list(self.symbols),
            "missed_from": self.missed_from,
            "missed_to": self.missed_to,
            "reason": self.reason,
            "detected_at": self.detected_at,
            "repaired": self.repaired,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> StreamGap:
        """Rebuild a gap from its stored document."""
        return cls(
            id=str(doc["_id"]),
            symbols=tuple(doc.get("symbols", ())),
            missed_from=doc["missed_from"],
            missed_to=doc["missed_to"],
            reason=str(doc.get("reason", "")),
            detected_at=doc.get("detected_at") or doc["missed_to"],
            repaired=bool(doc.get("repaired", False)),
        )


class StreamGapStore:
    """The ``stream_gaps`` collection."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[STREAM_GAPS]

    def record(self, gaps: Iterable[StreamGap]) -> None:
        """Store gaps so repair can find them; a gap already recorded is left as it is."""
        with store_errors("recording stream gaps"):
            for gap in gaps:
                doc = gap.to_document()
                self._collection.update_one({"_id": gap.id}, {"$setOnInsert": doc}, upsert=True)

    def open(self) -> list[StreamGap]:
        """Recorded gaps not yet repaired, oldest first."""
        with store_errors("reading stream gaps"):
            docs = list(self._collection.find({"repaired": False}).sort("missed_from", 1))
        return [StreamGap.from_document(d) for d in docs]

    def mark_repaired(self, gaps: Iterable[StreamGap], until: datetime) -> int:
        """Mark gaps repaired up to ``until``; returns how many were marked."""
        marked = 0
        with store_errors("marking gaps repaired"):
            for gap in gaps:
                self._collection.update_one(
                    {"_id": gap.id}, {"$set": {"repaired": True, "repaired_until": until}}
                )
                marked += 1
        return marked

    def note_short(self, gaps: Iterable[StreamGap], until: datetime, give_up_after: int) -> int:
        """Count a repair that left minutes of ``gaps`` missing; they stay open for another try.

        A gap still short after ``give_up_after`` attempts (the exchange has no candle for those
        minutes) is closed as ``unavailable``. Returns how many were closed that way.
        """
        closed = 0
        with store_errors("recording a short repair"):
            for gap in gaps:
                doc = self._collection.find_one_and_update(
                    {"_id": gap.id}, {"$inc": {"attempts": 1}}, return_document=True
                )
                if doc is not None and int(doc.get("attempts", 0)) >= give_up_after:
                    self._collection.update_one(
                        {"_id": gap.id},
                        {"$set": {"repaired": True, "repaired_until": until, "unavailable": True}},
                    )
                    closed += 1
        return closed

    def delete_all(self) -> int:
        """Remove every recorded gap (used by `cryptobot stream reset`)."""
        with store_errors("clearing stream gaps"):
            return self._collection.delete_many({}).deleted_count


@dataclass(frozen=True)
class HistoryGap:
    """An expected history candle the exchange did not return, and why."""

    symbol: str
    open_time: datetime
    reason: str


class HistoryGapStore(SeriesCollection):
    """Exchange-side gaps of one history collection, unique on (symbol, open_time)."""

    def replace_days(
        self, symbol: str, days: Iterable[date], gaps: Iterable[HistoryGap], detected_at: datetime
    ) -> None:
        """Make the recorded gaps of ``symbol`` on ``days`` exactly ``gaps``.

        One read for the span of the days, then only the differences are written: a gap the
        exchange has since filled is removed, a new one added, an old one kept as it is.
        """
        in_days = set(days)
        ordered = sorted(in_days)
        start = datetime.combine(ordered[0], time(), UTC)
        end = datetime.combine(ordered[-1], time(), UTC) + timedelta(days=1)
        with store_errors(f"reading {self.name}"):
            recorded = {
                d["open_time"]: d["_id"]
                for d in self._collection.find(
                    {"symbol": symbol, "open_time": {"$gte": start, "$lt": end}}, {"open_time": 1}
                )
            }
        wanted = {g.open_time: g for g in gaps}
        stale = [_id for t, _id in recorded.items() if t not in wanted and t.date() in in_days]
        if stale:
            with store_errors(f"updating {self.name}"):
                self._collection.delete_many({"_id": {"$in": stale}})
        new = [
            {
                "symbol": g.symbol,
                "open_time": g.open_time,
                "reason": str(g.reason),
                "detected_at": detected_at,
            }
            for t, g in sorted(wanted.items())
            if t not in recorded
        ]
        insert_ignoring_duplicates(self._collection, new)

    def open_times(self, symbol: str, start: datetime, end: datetime) -> set[datetime]:
        """Open times with a recorded gap for ``symbol`` in [start, end)."""
        return {d["open_time"] for d in self.range_docs(symbol, start, end, fields=OPEN_TIME_ONLY)}

    def count(self, symbol: str, start: datetime, end: datetime) -> int:
        """How many gaps are recorded for ``symbol`` in [start, end)."""
        with store_errors(f"reading {self.name}"):
            return self._collection.count_documents(
                {"symbol": symbol, "open_time": {"$gte": start, "$lt": end}}
            )
