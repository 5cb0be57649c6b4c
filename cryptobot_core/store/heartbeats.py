"""The ``stream_heartbeats`` collection: one document per stream process role."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors
from cryptobot_core.store.names import HEARTBEATS


class HeartbeatStore:
    """Heartbeats keyed by role (``producer``, ``consumer``)."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[HEARTBEATS]

    def write(self, role: str, beat: Mapping[str, Any]) -> None:
        """Replace the heartbeat of ``role``."""
        with store_errors(f"writing the {role} heartbeat"):
            self._collection.replace_one({"_id": role}, dict(beat), upsert=True)

    def read(self, roles: Iterable[str]) -> dict[str, Document]:
        """The latest heartbeat of each of ``roles`` that has one."""
        with store_errors("reading stream heartbeats"):
            return {doc["_id"]: doc for doc in self._collection.find({"_id": {"$in": list(roles)}})}
