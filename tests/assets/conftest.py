"""Dagster fixtures: the code location reads the store URI from its environment."""

from __future__ import annotations

import pytest

from cryptobot_core.settings import Settings


@pytest.fixture(autouse=True)
def mongo_uri_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """CRYPTOBOT_MONGO_URI for the test store: it may hold a password, so it is never config."""
    assert settings.mongo_uri is not None
    monkeypatch.setenv("CRYPTOBOT_MONGO_URI", settings.mongo_uri)
