"""The store: the only code that speaks to the data collections.

``with open_store(settings) as store:`` gives typed repositories: ``store.stream`` and
``store.history(interval)`` (candles), ``store.history_gaps(interval)``, ``store.stream_gaps``,
``store.features``, ``store.dead_letters``, ``store.heartbeats``. Collection names live in
``names``; the decimal codec of the storage format in ``codec``. Every failure surfaces as
``StoreUnavailable`` (cannot reach the store) or ``StoreError``.
"""

from cryptobot_core.store.bans import ExchangeBanStore
from cryptobot_core.store.candles import (
    CandleStore,
    SymbolSpan,
    candle_document,
    candle_from_document,
)
from cryptobot_core.store.client import (
    DriverError,
    WriteResult,
    connect,
    insert_ignoring_duplicates,
    store_errors,
)
from cryptobot_core.store.database import Store, open_store
from cryptobot_core.store.dead_letters import DeadLetter, DeadLetterStore
from cryptobot_core.store.features import FeatureStore
from cryptobot_core.store.gaps import HistoryGap, HistoryGapStore, StreamGap, StreamGapStore
from cryptobot_core.store.heartbeats import HeartbeatStore
from cryptobot_core.store.names import (
    DEAD_LETTERS,
    EXCHANGE_BANS,
    FEATURES_15M,
    HEARTBEATS,
    HISTORICAL_15M,
    HISTORY_GAPS_15M,
    STREAM_GAPS,
    STREAMING_1M,
    history_collection,
    history_gaps_collection,
)

__all__ = [
    "DEAD_LETTERS",
    "EXCHANGE_BANS",
    "FEATURES_15M",
    "HEARTBEATS",
    "HISTORICAL_15M",
    "HISTORY_GAPS_15M",
    "STREAMING_1M",
    "STREAM_GAPS",
    "CandleStore",
    "DeadLetter",
    "DriverError",
    "DeadLetterStore",
    "ExchangeBanStore",
    "FeatureStore",
    "HeartbeatStore",
    "HistoryGap",
    "HistoryGapStore",
    "Store",
    "StreamGap",
    "StreamGapStore",
    "SymbolSpan",
    "WriteResult",
    "candle_document",
    "candle_from_document",
    "connect",
    "history_collection",
    "history_gaps_collection",
    "insert_ignoring_duplicates",
    "open_store",
    "store_errors",
]
