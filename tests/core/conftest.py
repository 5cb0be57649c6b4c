"""Core fixtures: the per-test database as the store's typed handle."""

from __future__ import annotations

from typing import Any

import pytest

from cryptobot_core.store import Store


@pytest.fixture
def store(mongo_db: Any) -> Store:
    """Repositories on the per-test database (the test's client stays open)."""
    return Store(mongo_db)
