"""Collections keyed by (symbol, open_time): the reads every candle-like collection shares.

Every read is bounded on ``open_time``: some MongoDB-protocol servers (SecantusDB)
materialise every match before sorting or limiting, so an unbounded ``find`` costs the
whole symbol even with ``limit(1)``. An ``is_closed`` predicate outside the
(symbol, open_time) index made SecantusDB scan the collection (~100× slower), so closed-only
reads filter in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors

Projection = Mapping[str, Any]
# The key alone: what presence checks need.
OPEN_TIME_ONLY: Projection = {"_id": 0, "open_time": 1}


class SeriesCollection:
    """One collection whose documents are unique on (symbol, open_time)."""

    def __init__(self, db: Database[Document], name: str) -> None:
        self._collection: Collection[Document] = db[name]

    @property
    def name(self) -> str:
        """The collection name."""
        return self._collection.name

    def ensure_indexes(self) -> None:
        """Create the unique (symbol, open_time) index (idempotent)."""
        with store_errors(f"creating indexes on {self.name}"):
            self._collection.create_index(
                [("symbol", ASCENDING), ("open_time", ASCENDING)],
                unique=True,
                name="symbol_open_time",
            )

    def range_docs(
        self,
        symbol: str,
        start: datetime,
        end: datetime,
        *,
        closed_only: bool = False,
        fields: Projection | None = None,
    ) -> list[Document]:
        """Documents of ``symbol`` with open_time in [start, end), oldest first."""
        query = {"symbol": symbol, "open_time": {"$gte": start, "$lt": end}}
        with store_errors(f"reading {self.name}"):
            docs = list(
                self._collection.find(query, fields or {"_id": 0}).sort("open_time", ASCENDING)
            )
        if closed_only:
            return [d for d in docs if d.get("is_closed", True)]
        return docs

    def newest_doc(
        self,
        symbol: str,
        floors: Sequence[datetime | None],
        *,
        closed_only: bool = False,
        fields: Projection | None = None,
    ) -> Document | None:
        """The newest document of ``symbol``, probing open_time >= each floor in turn.

        Callers pass narrow floors first and None (no bound) last: the first floor that
        holds a match answers, so the usual question costs one small indexed read.
        """
        projection = fields or {"_id": 0}
        for floor in floors:
            query: dict[str, Any] = {"symbol": symbol}
            if floor is not None:
                query["open_time"] = {"$gte": floor}
            with store_errors(f"reading {self.name}"):
                # Only the newest one or two candles can still be open: look at a few and
                # filter here (an is_closed predicate would cost a collection scan).
                found = list(
                    self._collection.find(query, projection).sort("open_time", DESCENDING).limit(4)
                )
                if closed_only:
                    found = [d for d in found if d.get("is_closed", True)]
                    if not found and floor is None:
                        found = list(
                            self._collection.find({**query, "is_closed": True}, projection)
                            .sort("open_time", DESCENDING)
                            .limit(1)
                        )
            if found:
                return found[0]
        return None

    def stored_open_times(self, symbol: str, first: datetime, last: datetime) -> set[datetime]:
        """Open times stored for ``symbol`` from ``first`` to ``last``, both included."""
        with store_errors(f"reading {self.name}"):
            return {
                d["open_time"]
                for d in self._collection.find(
                    {"symbol": symbol, "open_time": {"$gte": first, "$lte": last}},
                    OPEN_TIME_ONLY,
                )
            }

    def has_symbol(self, symbol: str) -> bool:
        """True when any document of ``symbol`` is stored."""
        with store_errors("looking up a symbol"):
            return self._collection.find_one({"symbol": symbol}, {"_id": 1}) is not None
