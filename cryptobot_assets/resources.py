"""Thin Dagster resources that hand out core objects built from the one Settings class."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pymongo import MongoClient
from pymongo.database import Database

from cryptobot_core.settings import Settings, load_settings
from cryptobot_core.store import CandleStore, connect


class CryptobotSettingsResource(dg.ConfigurableResource):
    """Settings from CRYPTOBOT_* variables, with optional per-deployment overrides."""

    mongo_uri: str | None = None
    mongo_db: str | None = None
    exchange: str | None = None

    def settings(self) -> Settings:
        """Settings read now (never at import time), with this resource's overrides."""
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        return load_settings(**overrides)


class MongoResource(dg.ConfigurableResource):
    """The document store: a pymongo Database and candle stores on it."""

    config: dg.ResourceDependency[CryptobotSettingsResource]

    def client(self) -> MongoClient[dict[str, Any]]:
        """A new tz-aware client (callers close it)."""
        return connect(self.config.settings())

    def database(self, client: MongoClient[dict[str, Any]]) -> Database[dict[str, Any]]:
        """The database of the exchange in use (simulated data has its own)."""
        return client[self.config.settings().database]

    def candles(self, client: MongoClient[dict[str, Any]], collection: str) -> CandleStore:
        """A CandleStore on ``collection``."""
        return CandleStore(self.database(client), collection)
