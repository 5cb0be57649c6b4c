"""The ``dead_letters`` collection: messages the stream consumer could not accept, with why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from cryptobot_core.store.client import Document, store_errors
from cryptobot_core.store.names import DEAD_LETTERS


@dataclass(frozen=True)
class DeadLetter:
    """A message the consumer could not accept, with the reason."""

    reason: str
    raw: str
    topic: str
    partition: int
    offset: int
    at: datetime

    @property
    def id(self) -> str:
        """Idempotency key: a replayed batch rewrites the same doc."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def to_document(self) -> Document:
        """The stored document (without its _id, the idempotency key)."""
        return {
            "reason": self.reason,
            "raw": self.raw,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "at": self.at,
        }


class DeadLetterStore:
    """Dead letters keyed by topic:partition:offset, so a replayed batch adds nothing."""

    def __init__(self, db: Database[Document]) -> None:
        self._collection: Collection[Document] = db[DEAD_LETTERS]

    def record(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters; one recorded already is left as it is."""
        if not letters:
            return
        ops = [
            UpdateOne({"_id": d.id}, {"$setOnInsert": d.to_document()}, upsert=True)
            for d in letters
        ]
        with store_errors(f"writing {len(ops)} dead letters"):
            self._collection.bulk_write(ops, ordered=False)

    def estimated_count(self) -> int:
        """About how many dead letters are stored (collection metadata: no scan)."""
        with store_errors(f"observing {DEAD_LETTERS}"):
            return self._collection.estimated_document_count()
