"""What the stack hands on, and the one loader every other command uses: the explicit
environment, then the running stack's stack.env, then .env, then the defaults."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from cryptobot_core.errors import ConfigError, ServiceError
from cryptobot_core.launcher.pidfile import PID_FILE, PidFile
from cryptobot_core.launcher.processes import identity
from cryptobot_core.launcher.stackenv import settings_env, stack_settings, write_stack_env
from cryptobot_core.services import free_port
from cryptobot_core.settings import get_settings, layered_settings, load_settings, redact


def test_settings_env_round_trips_through_a_child_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = stack_settings(
        load_settings(
            exchange="sim",
            symbols="BTCUSDT,SOLUSDT",
            history_start_date="2024-01-02",
            sim_speed=60.0,
            api_port=8123,
            dashboard_port=8600,
            exchange_fallback_reason='Binance "did not" answer \\ at all',
        ),
    )
    env = settings_env(original)
    assert env["CRYPTOBOT_SYMBOLS"] == "BTCUSDT,SOLUSDT"
    assert env["CRYPTOBOT_MONGO_URI"] == original.effective_mongo_uri
    assert env["CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


def test_stack_settings_follow_the_configured_ports(clean_env: Path) -> None:
    settings = stack_settings(
        load_settings(api_port=8111, dashboard_port=8622, dagster_port=3111, data_dir="rel/dir")
    )
    assert settings.api_url == "http://127.0.0.1:8111"
    assert settings.dagster_url == "http://127.0.0.1:3111"
    assert "http://localhost:8622" in settings.api_cors_origins
    assert settings.data_dir.is_absolute() and settings.data_dir == clean_env / "rel" / "dir"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.stream_supervisor_autostart is True


def _claim(data_dir: Path, pid: int) -> None:
    ident = identity(pid)
    assert ident is not None
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / PID_FILE).write_text(f"{ident[0]} {ident[1]}")


def _running_stack(data_dir: Path, **values: object) -> Path:
    """stack.env of a stack decided on ``values``, claimed by this (live) process."""
    stack = stack_settings(load_settings(data_dir=data_dir, **values), ["store", "dagster"])
    _claim(data_dir, os.getpid())
    return write_stack_env(stack)


def test_commands_use_the_running_stack_over_dotenv_but_not_over_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = clean_env / ".cryptobot"
    path = _running_stack(
        data,
        exchange="sim",
        exchange_fallback_reason="ping failed",
        dagster_port=3555,
        mongo_uri="mongodb://app:s3cret@127.0.0.1:27999/?authSource=admin",
        mongo_read_uri="mongodb://ro:r3ad@127.0.0.1:27999/?authSource=admin",
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # .env edited while the stack runs: it does not split this terminal from the stack.
    (clean_env / ".env").write_text(
        "CRYPTOBOT_EXCHANGE=binance\nCRYPTOBOT_HISTORY_DAYS=30\nCRYPTOBOT_HISTORY_START_DATE=2024-05-01\n"
    )
    settings = layered_settings()
    # The stack's decisions win over .env, even where the stack kept the default (history).
    assert settings.exchange == "sim" and settings.database == "cryptobot_sim"
    assert settings.exchange_fallback_reason == "ping failed"
    assert settings.dagster_url == "http://127.0.0.1:3555"
    assert settings.history_days == 180 and settings.history_start_date is None
    assert settings.mongo_uri == "mongodb://app:s3cret@127.0.0.1:27999/?authSource=admin"
    assert settings.read_only().mongo_uri == settings.mongo_read_uri
    # An explicit variable still wins.
    monkeypatch.setenv("CRYPTOBOT_HISTORY_DAYS", "7")
    get_settings.cache_clear()
    assert get_settings().history_days == 7 and get_settings().exchange == "sim"


def test_a_stopped_stack_is_ignored_and_auto_resolves_like_up(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = clean_env / ".cryptobot"
    _running_stack(data, exchange="binance", dagster_port=3555)
    ended = subprocess.Popen(["sleep", "0"])
    dead = identity(ended.pid)
    ended.wait()
    assert dead is not None
    (data / PID_FILE).write_text(f"{dead[0]} {dead[1]}")
    # Nothing answers here: auto falls back to the simulator, as `cryptobot up` would.
    monkeypatch.setenv("CRYPTOBOT_BINANCE_REST_URL", f"http://127.0.0.1:{free_port()}")
    settings = layered_settings()
    assert settings.dagster_port == 3000  # not the stopped stack's
    assert settings.exchange == "sim" and settings.exchange_fallback_reason
    assert "USING THE BUILT-IN SIMULATOR" in caplog.text


def test_the_launcher_claims_its_data_dir(clean_env: Path) -> None:
    data = clean_env / "d"
    PidFile(data).acquire()
    assert (data / PID_FILE).read_text().split()[0] == str(os.getpid())
    _claim(data, 1)  # pid 1 is alive and is not us
    with pytest.raises(ServiceError, match=r"another `cryptobot up` \(pid 1\)"):
        PidFile(data).acquire()
    PidFile(data).release()  # not ours: kept
    assert (data / PID_FILE).exists()


def test_redact_hides_passwords() -> None:
    assert redact("mongodb://app:s3cret@db:27017/x") == "mongodb://app:***@db:27017/x"
    assert redact("mongodb://db:27017") == "mongodb://db:27017"


def test_empty_values_mean_unset_and_a_read_uri_needs_a_uri(clean_env: Path) -> None:
    (clean_env / ".env").write_text("CRYPTOBOT_HISTORY_START_DATE=\nCRYPTOBOT_MONGO_URI=\n")
    settings = load_settings()
    assert settings.history_start_date is None and settings.mongo_uri is None
    with pytest.raises(
        ConfigError, match="CRYPTOBOT_MONGO_READ_URI is set but CRYPTOBOT_MONGO_URI"
    ):
        load_settings(mongo_read_uri="mongodb://ro:x@db:27017")


def test_a_bad_uri_is_reported_without_its_password(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(mongo_uri="mongo://app:s3cret@db:27017")
    message = str(err.value)
    assert message.startswith("invalid setting CRYPTOBOT_MONGO_URI: must start with mongodb://")
    assert "s3cret" not in message and "app:***@db" in message
    assert "\n" not in message  # one bad setting, one line
