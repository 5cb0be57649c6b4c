"""The connection to the document store, its error mapping, and the duplicate-tolerant insert."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, PyMongoError

from cryptobot_core.errors import StoreError, StoreUnavailable
from cryptobot_core.settings import Settings

Document = dict[str, Any]
# The driver's base error. Repositories turn it into StoreError; the edges also map it, in
# case one ever escapes, so a client still gets "store unavailable", never a stack trace.
DriverError = PyMongoError
_DUPLICATE_KEY = 11000


def connect(settings: Settings, *, timeout_ms: int | None = None) -> MongoClient[Document]:
    """A tz-aware MongoClient for the configured (or embedded) store; connects lazily.

    The one write-concern decision: every write is acknowledged only once it is in the
    store's journal (``j: true``). The stream consumer commits Kafka offsets after its
    writes are acknowledged, so an acknowledged write must survive a crash of the store,
    or a kill -9 of the store would lose minutes whose offsets were already committed.
    Measured cost on the stream benchmark: docs/benchmarks/stream.md.
    """
    timeout = timeout_ms or settings.mongo_timeout_ms
    return MongoClient(
        settings.effective_mongo_uri,
        journal=True,
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


def insert_ignoring_duplicates(
    coll: Collection[Document], docs: Sequence[Mapping[str, Any]]
) -> int:
    """Insert ``docs``; those whose unique key is already stored are skipped. Returns how many were new."""
    return len(docs) - len(insert_reporting_duplicates(coll, docs))


def insert_reporting_duplicates(
    coll: Collection[Document], docs: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert ``docs`` unordered; the positions of those refused as duplicate keys.

    Any other write error is raised as a StoreError. Plain inserts, not upserts: about a
    third of the cost on SecantusDB, the reason every "add what is new" write uses this.
    """
    if not docs:
        return []
    try:
        with store_errors(f"writing {len(docs)} documents to {coll.name}"):
            coll.insert_many([dict(d) for d in docs], ordered=False)
    except StoreError as exc:
        cause = exc.__cause__
        if isinstance(cause, BulkWriteError):
            errors = cause.details.get("writeErrors", [])
            if errors and all(e.get("code") == _DUPLICATE_KEY for e in errors):
                return [int(e["index"]) for e in errors]
        raise
    return []


@dataclass(frozen=True)
class WriteResult:
    """Counts from one bulk write."""

    inserted: int
    updated: int
    unchanged: int
