"""The database handle: one database's typed repositories, closed with the handle."""

from __future__ import annotations

from functools import cached_property
from types import TracebackType

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from cryptobot_core.intervals import Interval
from cryptobot_core.settings import Settings
from cryptobot_core.store.bans import ExchangeBanStore
from cryptobot_core.store.candles import CandleStore
from cryptobot_core.store.checkpoints import CheckpointStore
from cryptobot_core.store.client import Document, connect, store_errors
from cryptobot_core.store.dead_letters import DeadLetterStore
from cryptobot_core.store.features import FeatureStore
from cryptobot_core.store.gaps import HistoryGapStore, StreamGapStore
from cryptobot_core.store.heartbeats import HeartbeatStore
from cryptobot_core.store.names import STREAMING_1M, history_collection, history_gaps_collection
from cryptobot_core.store.universe import UniverseStore

# Where `cryptobot check` tries a write as the read-only user (refused, it stays empty).
PROBE_COLLECTION = "deploy_check_probe"
_UNAUTHORIZED = 13


class Store:
    """The repositories of one database: ``with open_store(settings) as store: ...``.

    Built on an existing ``Database`` (tests, a shared client) it leaves the client open;
    opened by :func:`open_store` it owns its client and closes it on exit.
    """

    def __init__(self, db: Database[Document], client: MongoClient[Document] | None = None) -> None:
        self._db = db
        self._client = client

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client this handle opened (a no-op for a borrowed database)."""
        if self._client is not None:
            self._client.close()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        with store_errors("pinging the document store"):
            self._db.command("ping")

    def refuses_writes(self) -> bool:
        """True when this handle's user may not write (what a read-only user must show).

        Tries one insert into a scratch collection; a write that goes through is undone.
        Raises StoreUnavailable / StoreError when the store does not answer at all.
        """
        probe = self._db[PROBE_COLLECTION]
        with store_errors("probing whether this user may write"):
            try:
                inserted = probe.insert_one({"probe": "cryptobot check"}).inserted_id
            except OperationFailure as exc:
                if exc.code == _UNAUTHORIZED:
                    return True
                raise
            probe.delete_one({"_id": inserted})
        return False

    @cached_property
    def universe(self) -> UniverseStore:
        """Symbol universes resolved from rules (``symbol_universe``)."""
        return UniverseStore(self._db)

    @cached_property
    def stream(self) -> CandleStore:
        """Live 1m candles (``streaming_data_1m``)."""
        return CandleStore(self._db, STREAMING_1M)

    def history(self, interval: Interval = Interval.M15) -> CandleStore:
        """History candles of ``interval`` (``historical_data_<interval>``)."""
        return CandleStore(self._db, history_collection(interval))

    def history_gaps(self, interval: Interval = Interval.M15) -> HistoryGapStore:
        """Exchange-side gaps of the history of ``interval``."""
        return HistoryGapStore(self._db, history_gaps_collection(interval))

    @cached_property
    def stream_gaps(self) -> StreamGapStore:
        """Spans the live stream missed."""
        return StreamGapStore(self._db)

    @cached_property
    def features(self) -> FeatureStore:
        """Candle features (``candle_features_15m``)."""
        return FeatureStore(self._db)

    @cached_property
    def dead_letters(self) -> DeadLetterStore:
        """Messages the stream consumer refused."""
        return DeadLetterStore(self._db)

    @cached_property
    def checkpoints(self) -> CheckpointStore:
        """How far incremental jobs (the reconciliation) have got."""
        return CheckpointStore(self._db)

    @cached_property
    def exchange_bans(self) -> ExchangeBanStore:
        """IP bans (HTTP 418) by exchange endpoint, seen by every process."""
        return ExchangeBanStore(self._db)

    @cached_property
    def heartbeats(self) -> HeartbeatStore:
        """Heartbeats of the stream processes."""
        return HeartbeatStore(self._db)


def open_store(settings: Settings, *, timeout_ms: int | None = None) -> Store:
    """A handle on the settings' database with its own client (lazy: connects on first use)."""
    client = connect(settings, timeout_ms=timeout_ms)
    return Store(client[settings.database], client)
