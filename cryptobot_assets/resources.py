"""Thin Dagster resources that hand out core objects built from the one Settings class."""

# No `from __future__ import annotations` here: Dagster resolves ResourceDependency
# annotations at class creation, and string annotations break nested resources.

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dagster as dg
from pymongo import MongoClient
from pymongo.database import Database

from cryptobot_core.settings import Settings, load_settings
from cryptobot_core.store import CandleStore, connect

if TYPE_CHECKING:
    from cryptobot_core.exchange import BinanceClient

# Settings that a deployment (or a test) may pin on the resource instead of the environment.
_PINNABLE = (
    "mongo_uri",
    "mongo_db",
    "exchange",
    "sim_host",
    "sim_port",
    "binance_rest_url",
    "history_start_date",
    "spark_master",
)


class CryptobotSettingsResource(dg.ConfigurableResource):
    """Settings from CRYPTOBOT_* variables, with optional per-deployment overrides."""

    mongo_uri: str | None = None
    mongo_db: str | None = None
    exchange: str | None = None
    sim_host: str | None = None
    sim_port: int | None = None
    binance_rest_url: str | None = None
    history_start_date: str | None = None
    spark_master: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "CryptobotSettingsResource":
        """A resource pinned to the values of ``settings`` that differ from the defaults."""
        defaults = Settings.model_fields
        pinned: dict[str, Any] = {}
        for name in _PINNABLE:
            value = getattr(settings, name)
            if value is not None and value != defaults[name].default:
                pinned[name] = value if isinstance(value, (int, str)) else str(value)
        if settings.exchange != "auto":
            pinned["exchange"] = settings.exchange
        return cls(**pinned)

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


class ExchangeResource(dg.ConfigurableResource):
    """The exchange REST client (Binance or the simulator, per settings)."""

    config: dg.ResourceDependency[CryptobotSettingsResource]

    def client(self) -> "BinanceClient":
        """A new BinanceClient for the configured exchange (callers close it)."""
        from cryptobot_core.exchange import BinanceClient

        return BinanceClient.from_settings(self.config.settings())


@lru_cache(maxsize=16)
def _shared(settings_json: str) -> dict[str, Any]:
    config = CryptobotSettingsResource.from_settings(Settings.model_validate_json(settings_json))
    return {
        "config": config,
        "mongo": MongoResource(config=config),
        "exchange": ExchangeResource(config=config),
    }


def common_resources(settings: Settings) -> dict[str, Any]:
    """The shared resources (config, mongo, exchange) for ``settings``, one object per key.

    Every domain's ``build_defs`` takes its shared resources from here so that
    ``dg.Definitions.merge`` sees the very same objects (it refuses two different resources
    under one key).
    """
    return dict(_shared(settings.model_dump_json()))
