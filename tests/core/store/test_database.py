"""The database handle: repositories on one database, errors named, clients closed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cryptobot_core.errors import StoreError, StoreUnavailable
from cryptobot_core.services import free_port
from cryptobot_core.settings import Settings
from cryptobot_core.store import DEAD_LETTERS, DeadLetter, Store, open_store
from tests.core.stream.conftest import make_candle

T0 = 1_700_006_400_000


def test_open_store_reads_and_writes_the_settings_database(
    settings: Settings, mongo_db: Any
) -> None:
    with open_store(settings) as store:
        store.ping()
        store.stream.ensure_indexes()
        store.stream.upsert([make_candle("BTCUSDT", T0)])
    assert mongo_db["streaming_data_1m"].count_documents({"symbol": "BTCUSDT"}) == 1
    # The handle closed its own client: using it now fails instead of leaking a connection.
    with pytest.raises(StoreError, match="Cannot use MongoClient after close"):
        store.ping()


def test_an_unreachable_store_is_named_as_such(settings: Settings) -> None:
    down = settings.model_copy(
        update={"mongo_uri": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"}
    )
    with (
        open_store(down, timeout_ms=300) as store,
        pytest.raises(StoreUnavailable, match="document store unreachable while pinging"),
    ):
        store.ping()


def test_dead_letters_are_kept_once_per_offset(store: Store, mongo_db: Any) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    letter = DeadLetter("not JSON", "{", "binance.kline.1m", 1, 42, at)
    store.dead_letters.record([letter, letter])
    store.dead_letters.record([DeadLetter("changed", "{", "binance.kline.1m", 1, 42, at)])
    assert mongo_db[DEAD_LETTERS].count_documents({}) == 1
    doc = mongo_db[DEAD_LETTERS].find_one({"_id": "binance.kline.1m:1:42"})
    assert doc is not None and doc["reason"] == "not JSON" and doc["offset"] == 42


def test_heartbeats_are_one_document_per_role(store: Store) -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    store.heartbeats.write("producer", {"updated_at": first, "stats": {"sent": 1}})
    store.heartbeats.write("producer", {"updated_at": first, "stats": {"sent": 2}})
    beats = store.heartbeats.read(["producer", "consumer"])
    assert list(beats) == ["producer"] and beats["producer"]["stats"] == {"sent": 2}
