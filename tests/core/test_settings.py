"""Settings: bad values fail early naming CRYPTOBOT_<VAR> and what is allowed; .env works;
.env.example documents every setting with its real default.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pytest

from cryptobot_core.errors import ConfigError
from cryptobot_core.settings import Settings, get_settings, load_settings

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"
# Variables in .env.example that are not Settings fields, on purpose.
NOT_SETTINGS = {
    "CRYPTOBOT_TEST_MONGO_URI",
    "CRYPTOBOT_TEST_KAFKA_BOOTSTRAP_SERVERS",
    "CRYPTOBOT_IMAGE",
    "CRYPTOBOT_IMAGE_TAG",
}


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CRYPTOBOT_* from the caller and no stray .env."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    return tmp_path


def documented() -> dict[str, str]:
    """NAME -> value for every `NAME=value` or `# NAME=value` line of .env.example."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


@pytest.mark.parametrize(
    ("var", "value", "allowed"),
    [
        ("CRYPTOBOT_EXCHANGE", "kraken", "'auto', 'sim' or 'binance'"),
        ("CRYPTOBOT_MONGO_PORT", "70000", "less than or equal to 65535"),
        ("CRYPTOBOT_API_PORT", "http", "valid integer"),
        ("CRYPTOBOT_SYMBOLS", "btc-usd", "a comma-separated list like BTCUSDT"),
        ("CRYPTOBOT_SYMBOLS", "top:0:USDT", "a rule top:N:QUOTE such as top:50:USDT"),
        ("CRYPTOBOT_SYMBOLS", "top:ten:USDT", "invalid symbol rule"),
        ("CRYPTOBOT_SPARK_MASTER", "mesos://x", "spark://HOST:PORT"),
        ("CRYPTOBOT_MONGO_URI", "http://db:27017", "mongodb:// or mongodb+srv://"),
        ("CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS", "kafka", "HOST:PORT[,HOST:PORT...]"),
        ("CRYPTOBOT_SIM_SPEED", "0", "greater than 0"),
        ("CRYPTOBOT_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("CRYPTOBOT_REQUIRE_JAVA", "maybe", "valid boolean"),
        ("CRYPTOBOT_MAX_RESTARTS", "-1", "greater than or equal to 0"),
        ("CRYPTOBOT_HISTORY_START_DATE", "yesterday", "valid date"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert var in message
    assert allowed in message
    assert repr(value) in message  # what was given


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOBOT_EXCHANGE", "kraken")
    monkeypatch.setenv("CRYPTOBOT_KAFKA_PORT", "0")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "CRYPTOBOT_EXCHANGE" in str(err.value) and "CRYPTOBOT_KAFKA_PORT" in str(err.value)


def test_dotenv_is_read_and_the_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "CRYPTOBOT_SYMBOLS=solusdt, BNBUSDT\nCRYPTOBOT_EXCHANGE=binance\n"
        "CRYPTOBOT_HISTORY_START_DATE=2024-03-01\nMONGO_ROOT_PASSWORD=not-a-setting\n"
    )
    settings = load_settings()
    assert settings.symbols == ["SOLUSDT", "BNBUSDT"]
    assert settings.exchange == "binance" and settings.database == "cryptobot"
    assert settings.start_date == date(2024, 3, 1)
    monkeypatch.setenv("CRYPTOBOT_EXCHANGE", "sim")
    settings = load_settings()
    assert settings.exchange == "sim" and settings.database == "cryptobot_sim"


def test_bad_value_in_dotenv_is_reported_too(clean_env: Path) -> None:
    (clean_env / ".env").write_text("CRYPTOBOT_DASHBOARD_PORT=99999\n")
    with pytest.raises(ConfigError, match="CRYPTOBOT_DASHBOARD_PORT"):
        load_settings()


def test_effective_endpoints_follow_ports_or_configured_uris(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRYPTOBOT_MONGO_PORT", "28000")
    monkeypatch.setenv("CRYPTOBOT_KAFKA_PORT", "29000")
    settings = load_settings()
    assert settings.effective_mongo_uri == "mongodb://127.0.0.1:28000/?directConnection=true"
    assert settings.effective_kafka_bootstrap == "127.0.0.1:29000"
    monkeypatch.setenv("CRYPTOBOT_MONGO_URI", "mongodb://u:p@db:27017/?authSource=admin")
    monkeypatch.setenv("CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings()
    assert settings.effective_mongo_uri == "mongodb://u:p@db:27017/?authSource=admin"
    assert settings.effective_kafka_bootstrap == "k1:9092,k2:9092"


def test_env_example_documents_every_setting_and_nothing_stale() -> None:
    names = set(documented())
    fields = {f"CRYPTOBOT_{name.upper()}" for name in Settings.model_fields}
    assert fields - names == set(), "settings missing from .env.example"
    stale = {n for n in names if n.startswith("CRYPTOBOT_")} - fields - NOT_SETTINGS
    assert stale == set(), "variables in .env.example that no setting reads"


def test_env_example_defaults_are_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    for name, value in documented().items():
        if not name.startswith("CRYPTOBOT_") or name in NOT_SETTINGS:
            continue
        field = name.removeprefix("CRYPTOBOT_").lower()
        if value == "":
            assert getattr(defaults, field) is None, f"{name} is documented as unset"
            continue
        monkeypatch.setenv(name, value)
        assert getattr(load_settings(), field) == getattr(defaults, field), name
        monkeypatch.delenv(name)


def test_env_example_as_dotenv_keeps_the_local_defaults(clean_env: Path) -> None:
    # Copying the example to .env must not change `make up` (compose-only lines are ignored).
    (clean_env / ".env").write_text(ENV_EXAMPLE.read_text())
    assert load_settings() == Settings(_env_file=None)  # type: ignore[call-arg]
