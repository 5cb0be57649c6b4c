"""The ``checkpoints`` collection: how far an incremental job has got, by name."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors
from cryptobot_core.store.names import CHECKPOINTS


class CheckpointStore:
    """Named positions (epoch ms) of incremental jobs, e.g. the reconciliation."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[CHECKPOINTS]

    def get(self, name: str) -> int | None:
        """The position saved under ``name``, or None."""
        with store_errors(f"reading checkpoint {name}"):
            doc = self._collection.find_one({"_id": name})
        return int(doc["position_ms"]) if doc else None

    def set(self, name: str, position_ms: int) -> None:
        """Save ``position_ms`` under ``name``."""
        with store_errors(f"saving checkpoint {name}"):
            self._collection.update_one(
                {"_id": name},
                {"$set": {"position_ms": position_ms, "at": datetime.now(UTC)}},
                upsert=True,
            )
