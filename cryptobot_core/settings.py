"""All settings in one pydantic-settings class; read once, never at import time."""

from __future__ import annotations

import re
import types
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptobot_core.errors import ConfigError, CryptobotError
from cryptobot_core.exchange.exchange_info import SYMBOL_RE
from cryptobot_core.intervals import HISTORY_INTERVALS, Interval
from cryptobot_core.universe import RULE_HELP, UniverseRule, parse_rule

Port = Annotated[int, Field(ge=1, le=65535)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every CryptoBot setting; environment variables are ``CRYPTOBOT_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="CRYPTOBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where embedded services keep data and logs.
    data_dir: Path = Path(".cryptobot")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Document store. Unset mongo_uri = start embedded SecantusDB on mongo_port.
    # mongo_uri is the writers' URI (app user); readers (API, dashboard) use mongo_read_uri
    # (read-only user), which falls back to mongo_uri when unset (single-user deployments).
    # Kept out of repr(): they may hold passwords.
    mongo_uri: str | None = Field(None, repr=False)
    mongo_read_uri: str | None = Field(None, repr=False)
    # Passwords of the embedded store's users; unset = generated into <data_dir>/secrets/.
    mongo_app_password: SecretStr | None = None
    mongo_readonly_password: SecretStr | None = None
    mongo_port: Port = 27117
    mongo_db: str = "cryptobot"
    mongo_timeout_ms: int = Field(5000, ge=100, le=120_000)

    # Broker. Unset kafka_bootstrap_servers = start embedded Tansu on kafka_port.
    kafka_bootstrap_servers: str | None = None
    kafka_port: Port = 19092
    kafka_topic: str = "binance.kline.1m"
    kafka_dead_letter_topic: str = "binance.kline.1m.dead-letter"
    kafka_partitions: int = Field(4, ge=1, le=1000)
    kafka_consumer_group: str = "cryptobot-stream-consumer"
    # Live stream supervision: a heartbeat older than this means a hung process; a fresh run
    # gets the grace period to start; the supervisor sensor ticks at this interval.
    stream_heartbeat_stale_s: float = Field(60.0, gt=0, le=3600)
    stream_start_grace_s: float = Field(120.0, ge=0, le=3600)
    # A run that keeps beating but makes no progress this long is relaunched: a producer
    # receiving nothing, or receiving but handing nothing on; a consumer with lag consuming
    # nothing.
    stream_stall_s: float = Field(180.0, gt=0, le=86_400)
    stream_supervisor_interval_s: int = Field(30, ge=1, le=3600)
    # Start the stream_supervisor sensor when Dagster loads the code location.
    stream_supervisor_autostart: bool = False

    # Exchange: sim (built-in simulator), binance, or auto (binance if /api/v3/ping answers).
    exchange: Literal["auto", "sim", "binance"] = "auto"
    binance_rest_url: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    # Bulk kline archives (data.binance.vision layout); the simulator serves its own.
    binance_archive_url: str = "https://data.binance.vision"
    sim_host: str = "127.0.0.1"
    sim_port: Port = 9443
    sim_seed: int = 42
    # Simulated seconds per real second (1 = real time).
    sim_speed: float = Field(1.0, gt=0, le=100_000)
    http_timeout_s: float = Field(10.0, gt=0, le=300)
    # Set by `cryptobot up` when exchange=auto fell back to the simulator (the reason why),
    # so the API's readiness and the dashboard can say so; leave it unset yourself.
    exchange_fallback_reason: str | None = None

    # What to collect: a list, or a rule such as top:50:USDT (cryptobot_core.universe).
    symbols: Annotated[list[str] | UniverseRule, NoDecode] = ["BTCUSDT", "ETHUSDT"]
    history_start_date: date | None = None
    history_days: int = Field(180, ge=1, le=3650)
    # Where closed history comes from: "archive" takes closed months and days from the bulk
    # archives (checksums verified, REST for whatever they lack); "rest" uses REST only.
    history_source: Literal["archive", "rest"] = "archive"
    # Intervals kept as history, one asset each (klines_15m, klines_1h, ...); 15m always,
    # since the features, the 1m/15m reconciliation and the API's fresh views build on it.
    history_intervals: Annotated[list[Interval], NoDecode] = [Interval.M15]

    # Compute.
    spark_master: str = "local[*]"

    # Serving.
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    api_url: str = "http://127.0.0.1:8000"
    api_cors_origins: Annotated[list[str], NoDecode] = [
        "http://localhost:8501",
        "http://127.0.0.1:8501",
    ]
    # Live push (/stream): at most this many clients at once (more get a 503 with
    # Retry-After), and each connection ends after this many seconds (clients reconnect).
    api_stream_max_clients: int = Field(200, ge=1, le=100_000)
    api_stream_max_lifetime_s: float = Field(3600.0, gt=0, le=86_400)
    dashboard_port: Port = 8501
    dagster_port: Port = 3000
    dagster_url: str = "http://127.0.0.1:3000"

    # Launcher: PySpark needs Java 17+; false = only warn when it is missing.
    require_java: bool = True
    # How often `cryptobot up` restarts a service that died before it stops the stack.
    max_restarts: int = Field(3, ge=0, le=100)

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                rule = parse_rule(value)
            except CryptobotError as exc:
                raise ValueError(str(exc)) from None
            if rule is not None:
                return rule
        value = _split_csv(value)
        if isinstance(value, list):
            value = [str(v).upper() for v in value]
            bad = [v for v in value if not SYMBOL_RE.match(v)]
            if bad:
                raise ValueError(f"invalid symbol(s) {bad}; use {RULE_HELP}")
            if not value:
                raise ValueError(f"at least one symbol is required: use {RULE_HELP}")
        return value

    @field_validator("history_intervals", mode="before")
    @classmethod
    def _history_intervals(cls, value: object) -> object:
        value = _split_csv(value)
        if not isinstance(value, list):
            return value
        allowed = ", ".join(i.value for i in HISTORY_INTERVALS)
        parsed: list[Interval] = []
        for item in value:
            try:
                interval = Interval(item)
            except ValueError:
                raise ValueError(f"invalid interval {item!r}; allowed: {allowed}") from None
            if interval not in HISTORY_INTERVALS:
                raise ValueError(
                    f"{interval.value} cannot be kept as history, which is partitioned by UTC "
                    f"day; allowed: {allowed} (the API resamples coarser ones from these)"
                )
            parsed.append(interval)
        if Interval.M15 not in parsed:
            raise ValueError(
                "must include 15m: the features, the reconciliation with the 1m stream and "
                "the API's fresh views are built on it (e.g. 15m,1h)"
            )
        return sorted(set(parsed), key=lambda i: i.ms)

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str) -> str:
        if not re.match(r"^(local(\[(\*|\d+)\])?|spark://.+|yarn|k8s://.+)$", value):
            raise ValueError(
                "must be local, local[N], local[*], spark://HOST:PORT, yarn or k8s://..."
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        # `CRYPTOBOT_X=` (empty) means "not set" for every optional setting, so a child or
        # stack.env can pass "unset" on, and an empty line in .env is not an error.
        if isinstance(data, dict):
            return {k: None if v == "" and k in _optional_fields() else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _read_uri_needs_uri(self) -> Settings:
        if self.mongo_read_uri is not None and self.mongo_uri is None:
            raise ValueError(
                "CRYPTOBOT_MONGO_READ_URI is set but CRYPTOBOT_MONGO_URI is not: set both for "
                "an external MongoDB, or neither for the embedded store"
            )
        return self

    @field_validator("mongo_uri", "mongo_read_uri")
    @classmethod
    def _mongo_uri(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value or None

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value and not all(re.match(r"^[\w.\-]+:\d+$", p.strip()) for p in value.split(",")):
            raise ValueError("must be HOST:PORT[,HOST:PORT...]")
        return value or None

    # Derived values: one place for each decision.

    @property
    def start_date(self) -> date:
        """First day of history partitions (default: history_days back from today, UTC)."""
        if self.history_start_date:
            return self.history_start_date
        return datetime.now(UTC).date() - timedelta(days=self.history_days)

    @property
    def simulated(self) -> bool:
        """True when data comes from the built-in simulator (exchange must be resolved)."""
        return self.exchange == "sim"

    @property
    def database(self) -> str:
        """Simulated data lives in its own database so it never mixes with real data."""
        return f"{self.mongo_db}_sim" if self.simulated else self.mongo_db

    @property
    def symbol_rule(self) -> UniverseRule | None:
        """The universe rule CRYPTOBOT_SYMBOLS names, or None when it is a list."""
        return self.symbols if isinstance(self.symbols, UniverseRule) else None

    @property
    def symbol_list(self) -> list[str]:
        """The configured list; empty when CRYPTOBOT_SYMBOLS is a rule (see
        ``cryptobot_core.universe.configured_symbols`` for the symbols to collect)."""
        return [] if isinstance(self.symbols, UniverseRule) else list(self.symbols)

    @property
    def sim_url(self) -> str:
        """Base HTTP URL of the built-in simulator."""
        return f"http://{self.sim_host}:{self.sim_port}"

    @property
    def rest_base_url(self) -> str:
        """REST base URL of the exchange in use."""
        return self.sim_url if self.simulated else self.binance_rest_url.rstrip("/")

    @property
    def archive_base_url(self) -> str:
        """Base URL of the bulk kline archives of the exchange in use."""
        return self.sim_url if self.simulated else self.binance_archive_url.rstrip("/")

    @property
    def ws_base_url(self) -> str:
        """WebSocket base URL of the exchange in use."""
        if self.simulated:
            return f"ws://{self.sim_host}:{self.sim_port}"
        return self.binance_ws_url.rstrip("/")

    @property
    def effective_mongo_uri(self) -> str:
        """The configured MongoDB URI, or the embedded SecantusDB one."""
        return self.mongo_uri or f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true"

    @property
    def effective_mongo_read_uri(self) -> str:
        """The readers' URI: mongo_read_uri, else the writers' one."""
        return self.mongo_read_uri or self.effective_mongo_uri

    def read_only(self) -> Settings:
        """These settings for a reader: the read-only URI in place of the writers' one."""
        uri = self.effective_mongo_read_uri
        return self.model_copy(update={"mongo_uri": uri, "mongo_read_uri": uri})

    @property
    def effective_kafka_bootstrap(self) -> str:
        """The configured Kafka bootstrap servers, or the embedded Tansu one."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"


@lru_cache(maxsize=1)
def _optional_fields() -> frozenset[str]:
    return frozenset(
        name
        for name, field in Settings.model_fields.items()
        if get_origin(field.annotation) in (Union, types.UnionType)
        and type(None) in get_args(field.annotation)
    )


def redact(uri: str) -> str:
    """The URI without its password, for logs and messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _shown(value: object) -> str:
    # A URI given by mistake may still hold a password: never echo it.
    return repr(redact(value) if isinstance(value, str) and "://" in value else value)


def load_settings(
    *, env_files: tuple[Path | str, ...] = (".env",), **overrides: object
) -> Settings:
    """Settings from ``overrides``, the environment, ``env_files`` (later ones win), defaults.

    Validation failures become one ConfigError naming each variable and what is allowed.
    """
    values: dict[str, Any] = {"_env_file": env_files, **overrides}
    try:
        return Settings(**values)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not err["loc"]:
                problems.append(msg)
                continue
            var = f"CRYPTOBOT_{str(err['loc'][0]).upper()}"
            problems.append(f"{var}: {msg} (got {_shown(err.get('input'))})")
        if len(problems) == 1:
            raise ConfigError(f"invalid setting {problems[0]}") from None
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None


def layered_settings() -> Settings:
    """The settings of every command except ``cryptobot up``, in this order of precedence.

    1. the explicit environment (``CRYPTOBOT_*``);
    2. the running stack's ``<data_dir>/stack.env``, only while its ``cryptobot up`` is
       alive, so commands use the exchange, store, broker and Dagster the stack decided on;
    3. ``.env``;  4. the defaults.

    With no stack running, ``exchange=auto`` is resolved exactly as ``cryptobot up`` does it
    (same function, same loud warning when it falls back to the simulator).
    """
    # Imported here: the launcher builds on this module.
    from cryptobot_core.launcher.exchange import resolve_exchange
    from cryptobot_core.launcher.stackenv import running_stack_env

    settings = load_settings()
    stack_env = running_stack_env(settings.data_dir)
    if stack_env is not None:
        settings = load_settings(env_files=(".env", stack_env))
    return resolve_exchange(settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (see ``layered_settings``), read on first use."""
    return layered_settings()
