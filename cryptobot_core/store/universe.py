"""The ``symbol_universe`` collection: the symbols a rule resolved to, one document per rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors
from cryptobot_core.store.names import SYMBOL_UNIVERSE


@dataclass(frozen=True)
class ResolvedUniverse:
    """What a rule resolved to, and when."""

    rule: str
    symbols: tuple[str, ...]
    resolved_at: datetime


class UniverseStore:
    """Resolved symbol universes keyed by their rule (``top:50:USDT``)."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[SYMBOL_UNIVERSE]

    def read(self, rule: str) -> ResolvedUniverse | None:
        """The last resolution of ``rule``, if any."""
        with store_errors("reading the symbol universe"):
            doc = self._collection.find_one({"_id": rule})
        if doc is None:
            return None
        return ResolvedUniverse(rule, tuple(doc["symbols"]), doc["resolved_at"])

    def write(self, rule: str, symbols: Sequence[str], resolved_at: datetime) -> None:
        """Record the resolution of ``rule``."""
        with store_errors("writing the symbol universe"):
            self._collection.replace_one(
                {"_id": rule},
                {"_id": rule, "symbols": list(symbols), "resolved_at": resolved_at},
                upsert=True,
            )
