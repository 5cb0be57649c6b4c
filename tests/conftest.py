"""Shared fixtures: real local services on free ports, or the ones configured.

``CRYPTOBOT_TEST_MONGO_URI`` / ``CRYPTOBOT_TEST_KAFKA_BOOTSTRAP_SERVERS`` point the suite at
a real MongoDB / Kafka; otherwise SecantusDB and Tansu are started here and stopped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from cryptobot_core import services
from cryptobot_core.settings import Settings, load_settings

pytest_plugins = ["tests.fixtures.simulator", "tests.fixtures.postgres"]


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder for the logs of services the tests start."""
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def mongo_uri(service_logs: Path) -> Iterator[str]:
    """URI of a real MongoDB-protocol server for the whole session."""
    configured = os.environ.get("CRYPTOBOT_TEST_MONGO_URI")
    if configured:
        yield configured
        return
    port = services.free_port()
    proc = services.secantus(port, ":memory:", service_logs / "secantus.log").start()
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(service_logs: Path) -> Iterator[str]:
    """Bootstrap servers of a real Kafka-protocol broker for the whole session."""
    configured = os.environ.get("CRYPTOBOT_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    port = services.free_port()
    proc = services.tansu(port, service_logs / "tansu.log").start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture
def db_name(mongo_uri: str) -> Iterator[str]:
    """A fresh database name for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
        client.drop_database(f"{name}_sim")
    finally:
        client.close()


@pytest.fixture
def settings(
    mongo_uri: str, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings pointing at the test store with a per-test database (simulated exchange)."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_") and not key.startswith("CRYPTOBOT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    # The simulated exchange stores into f"{mongo_db}_sim"; both are dropped after the test.
    return load_settings(
        mongo_uri=mongo_uri,
        mongo_db=db_name,
        exchange="sim",
        data_dir=tmp_path / ".cryptobot",
    )


@pytest.fixture
def mongo_db(settings: Settings, mongo_uri: str) -> Iterator[Any]:
    """The per-test pymongo Database the settings point at."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[settings.database]
    finally:
        client.close()
