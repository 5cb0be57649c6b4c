"""The one Dagster resource: settings for both domains, and the core objects made from them."""

# No `from __future__ import annotations` here: Dagster resolves ResourceDependency
# annotations at class creation, and string annotations break nested resources.

import os
from typing import TYPE_CHECKING, Any

import dagster as dg

from cryptobot_core.errors import ConfigError
from cryptobot_core.settings import Settings, load_settings
from cryptobot_core.store import Store, open_store

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from cryptobot_core.exchange import BinanceClient
    from cryptobot_core.exchange.archive import ArchiveKlines

MONGO_URI_ENV = "CRYPTOBOT_MONGO_URI"
# Non-secret settings a deployment (or a test) may pin on the resource instead of the
# environment. Anything that may hold a secret is read from the environment only.
_PINNABLE = (
    "mongo_db",
    "exchange",
    "sim_host",
    "sim_port",
    "binance_rest_url",
    "history_start_date",
    "history_intervals",
    "spark_master",
)


class CryptobotSettingsResource(dg.ConfigurableResource):
    """Settings from the code location's CRYPTOBOT_* environment, plus non-secret pins.

    Never carries a secret value: ``mongo_uri`` may hold a password, so it is only ever
    ``dg.EnvVar("CRYPTOBOT_MONGO_URI")`` (the UI and run storage show the variable's name),
    and the settings read the URI from that same variable.
    """

    mongo_uri: str | None = None
    mongo_db: str | None = None
    exchange: str | None = None
    sim_host: str | None = None
    sim_port: int | None = None
    binance_rest_url: str | None = None
    history_start_date: str | None = None
    history_intervals: str | None = None
    spark_master: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "CryptobotSettingsResource":
        """A resource pinned to the non-secret values of ``settings`` that differ from defaults."""
        defaults = Settings.model_fields
        pinned: dict[str, Any] = {}
        for name in _PINNABLE:
            value = getattr(settings, name)
            if value is not None and value != defaults[name].default:
                if isinstance(value, list):
                    value = ",".join(str(v) for v in value)
                pinned[name] = value if isinstance(value, (int, str)) else str(value)
        if settings.exchange != "auto":
            pinned["exchange"] = settings.exchange
        if settings.mongo_uri is not None:
            if os.environ.get(MONGO_URI_ENV) != settings.mongo_uri:
                raise ConfigError(
                    f"the Dagster code location reads the store URI from {MONGO_URI_ENV} in its "
                    "environment (it may hold a password, so it is never resource config); set "
                    f"{MONGO_URI_ENV} to the URI to use"
                )
            pinned["mongo_uri"] = dg.EnvVar(MONGO_URI_ENV)
        return cls(**pinned)

    def settings(self) -> Settings:
        """Settings read now (never at import time), with this resource's pins."""
        overrides = {
            k: v for k, v in self.model_dump().items() if v is not None and k != "mongo_uri"
        }
        return load_settings(**overrides)

    def open_store(self) -> Store:
        """A database handle for the settings (``with config.open_store() as store:``)."""
        return open_store(self.settings())

    def history_client(self) -> "AbstractContextManager[BinanceClient | ArchiveKlines]":
        """The klines client of history: bulk archives first, REST for the rest."""
        from cryptobot_core.exchange.archive import history_client

        return history_client(self.settings())

    def exchange_client(self) -> "BinanceClient":
        """A REST client for the configured exchange (``with config.exchange_client() as c:``)."""
        from cryptobot_core.exchange import BinanceClient

        return BinanceClient.from_settings(self.settings())
