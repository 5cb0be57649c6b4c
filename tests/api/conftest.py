"""A store filled once per session by the core's writers, and an app reading it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from cryptobot_api.main import create_app
from cryptobot_core.settings import Settings, load_settings
from cryptobot_core.simulator.market import Market
from tests.api import seed


@dataclass
class Filled:
    """Settings pointing at the filled database, and the market it came from."""

    settings: Settings
    market: Market
    db: Any


def make_settings(mongo_uri: str, mongo_db: str, tmp: Path, **extra: Any) -> Settings:
    """Simulated-exchange settings for a given store (no .env read)."""
    return load_settings(
        _env_file=None,
        mongo_uri=mongo_uri,
        mongo_db=mongo_db,
        exchange="sim",
        data_dir=tmp / ".cryptobot",
        symbols="BTCUSDT,ETHUSDT",
        mongo_timeout_ms=1500,
        **extra,
    )


@pytest.fixture(scope="session")
def filled(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """History, stream, features and heartbeats from the simulator, written once."""
    name = f"api_{uuid.uuid4().hex[:10]}"
    settings = make_settings(mongo_uri, name, tmp_path_factory.mktemp("api"))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    db = client[settings.database]
    mkt = seed.market()
    seed.seed(db, mkt)
    try:
        yield Filled(settings, mkt, db)
    finally:
        client.drop_database(settings.database)
        client.close()


@pytest.fixture(scope="session")
def client(filled: Filled) -> Iterator[TestClient]:
    """The app over the filled store (lifespan run)."""
    with TestClient(create_app(filled.settings), raise_server_exceptions=False) as test_client:
        yield test_client
