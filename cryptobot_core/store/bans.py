"""The ``exchange_bans`` collection: an IP ban (HTTP 418) every process must respect."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors
from cryptobot_core.store.names import EXCHANGE_BANS


class ExchangeBanStore:
    """One document per exchange endpoint: until when it has banned this IP, and why."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[EXCHANGE_BANS]

    def banned_until(self, exchange: str) -> datetime | None:
        """The end of the ban on ``exchange`` (past or future), or None if none was recorded."""
        with store_errors("reading the exchange ban"):
            doc = self._collection.find_one({"_id": exchange})
        return doc["until"] if doc else None

    def ban(self, exchange: str, until: datetime, reason: str) -> None:
        """Record a ban until ``until``; a longer ban already recorded is kept."""
        with store_errors("recording an exchange ban"):
            self._collection.update_one(
                {"_id": exchange},
                {"$max": {"until": until}, "$set": {"reason": reason, "at": datetime.now(UTC)}},
                upsert=True,
            )
