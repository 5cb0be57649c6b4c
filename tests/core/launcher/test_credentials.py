"""Least privilege locally: the launcher starts SecantusDB with authentication and hands out
an app (readWrite) and a read-only URI. Real store processes, real logins."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher.credentials import ADMIN, Secrets, app_users
from cryptobot_core.launcher.specs import local_mongo_uri
from cryptobot_core.launcher.stackenv import service_env
from cryptobot_core.services import free_port
from cryptobot_core.settings import Settings, load_settings
from tests.core.launcher.conftest import RunStack

UNAUTHORIZED = 13
STORE_ONLY = ("broker", "dagster", "api", "dashboard")


def _client(uri: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)


def _password(uri: str) -> str:
    password = urlsplit(uri).password
    assert password
    return password


@pytest.fixture
def store_settings(clean_env: Path) -> Settings:
    """Only the embedded store (exchange=binance is never probed and needs no simulator)."""
    return load_settings(exchange="binance", mongo_port=free_port(), data_dir=clean_env / "data")


def test_store_users_cannot_exceed_their_role(
    store_settings: Settings, run_stack: RunStack
) -> None:
    with run_stack(store_settings, skip=STORE_ONLY) as final:
        assert final.mongo_uri and final.mongo_read_uri
        assert urlsplit(final.mongo_uri).username == "cryptobot_app"
        assert urlsplit(final.mongo_read_uri).username == "cryptobot_ro"
        db = final.database  # "cryptobot": exchange=binance

        writer = _client(final.mongo_uri)
        reader = _client(final.mongo_read_uri)
        anonymous = _client(local_mongo_uri(final.mongo_port))
        try:
            # (c) the app user writes, in the database and in its _sim twin
            writer[db]["candles"].insert_one({"symbol": "BTCUSDT", "close": "1.5"})
            writer[f"{db}_sim"]["candles"].insert_one({"symbol": "BTCUSDT"})
            # (a) the read-only user reads what was written but cannot write anything
            assert reader[db]["candles"].find_one({}, {"_id": 0}) == {
                "symbol": "BTCUSDT",
                "close": "1.5",
            }
            for action in (
                lambda: reader[db]["candles"].insert_one({"symbol": "ETHUSDT"}),
                lambda: reader[db]["candles"].delete_many({}),
                lambda: reader[f"{db}_sim"]["candles"].insert_one({"symbol": "ETHUSDT"}),
            ):
                with pytest.raises(OperationFailure) as denied:
                    action()
                assert denied.value.code == UNAUTHORIZED
            assert reader[db]["candles"].count_documents({}) == 1
            # neither user reaches another database
            with pytest.raises(OperationFailure):
                writer["other"]["x"].insert_one({})
            with pytest.raises(OperationFailure):
                reader["admin"].command("usersInfo")
            # (b) without credentials: refused
            with pytest.raises(OperationFailure, match="requires authentication"):
                anonymous[db].list_collection_names()
            with pytest.raises(OperationFailure, match="requires authentication"):
                anonymous[db]["candles"].insert_one({})
        finally:
            for client in (writer, reader, anonymous):
                client.close()


def test_secrets_are_private_reused_and_never_shown(
    store_settings: Settings, run_stack: RunStack
) -> None:
    data = store_settings.data_dir
    with (
        run_stack(store_settings, skip=STORE_ONLY) as first,
        _client(first.mongo_uri or "") as writer,
    ):
        writer[first.database]["kept"].insert_one({"n": 1})
    # (d) one file per user, 0600, in a 0700 folder
    vault = Secrets(first)
    assert stat.S_IMODE(vault.folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in vault.folder.iterdir())
    assert files == sorted(vault.path(u).name for u in (ADMIN, *app_users()))
    for path in vault.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords = {_password(first.mongo_uri or ""), _password(first.mongo_read_uri or "")}
    assert passwords == {vault.read(u) for u in app_users()}
    # Logs never carry a password.
    for log in (data / "logs").iterdir():
        text = log.read_text(errors="replace")
        assert not any(p in text for p in passwords), log
    # The stack file (for other terminals) is removed when the stack stops.
    assert not (data / "stack.env").exists()

    # (e) a second start on the same data dir reuses the users and their passwords
    with run_stack(store_settings, skip=STORE_ONLY) as second:
        assert (second.mongo_uri, second.mongo_read_uri) == (first.mongo_uri, first.mongo_read_uri)
        with _client(second.mongo_read_uri or "") as reader:
            assert reader[second.database]["kept"].count_documents({}) == 1


def test_a_lost_secret_is_a_clear_error_and_reset_keeps_the_data(
    store_settings: Settings, run_stack: RunStack
) -> None:
    with (
        run_stack(store_settings, skip=STORE_ONLY) as first,
        _client(first.mongo_uri or "") as writer,
    ):
        writer[first.database]["kept"].insert_one({"n": 1})
    vault = Secrets(first)
    for lost in (app_users()[1], ADMIN):
        saved = vault.read(lost)
        vault.path(lost).unlink()
        with (
            pytest.raises(ServiceError) as err,
            run_stack(store_settings, skip=STORE_ONLY),
        ):
            pass
        message = str(err.value)
        assert str(vault.path(lost)) in message
        assert "--reset-credentials" in message and "data is kept" in message
        if lost.password_setting:  # or give the password the store has
            assert f"CRYPTOBOT_{lost.password_setting.upper()}" in message
        vault.write(lost, saved or "")

    vault.path(app_users()[0]).unlink()
    with run_stack(store_settings, skip=STORE_ONLY, reset_credentials=True) as reset:
        assert reset.mongo_uri != first.mongo_uri  # new passwords
        with _client(reset.mongo_read_uri or "") as reader:
            assert reader[reset.database]["kept"].count_documents({}) == 1
        with pytest.raises(OperationFailure), _client(first.mongo_read_uri or "") as old:
            old[reset.database]["kept"].count_documents({})


def test_given_passwords_are_used_and_not_stored(
    store_settings: Settings, run_stack: RunStack
) -> None:
    base = {
        "exchange": "binance",
        "mongo_port": store_settings.mongo_port,
        "data_dir": store_settings.data_dir,
        "mongo_readonly_password": "ro-secret-1",
    }
    given = load_settings(**base, mongo_app_password="app-secret-1")
    with run_stack(given, skip=STORE_ONLY) as final:
        assert _password(final.mongo_uri or "") == "app-secret-1"
        assert _password(final.mongo_read_uri or "") == "ro-secret-1"
        with _client(final.mongo_uri or "") as writer:
            writer[final.database]["x"].insert_one({})
    assert {p.name for p in Secrets(given).folder.iterdir()} == {Secrets(given).path(ADMIN).name}
    # Changing a given password changes it in the store at the next start.
    changed = load_settings(**base, mongo_app_password="app-secret-2")
    with run_stack(changed, skip=STORE_ONLY) as final:
        assert _password(final.mongo_uri or "") == "app-secret-2"
        with _client(final.mongo_uri or "") as writer:
            assert writer[final.database]["x"].count_documents({}) == 1


def test_readers_get_only_the_read_only_uri(store_settings: Settings) -> None:
    final = store_settings.model_copy(
        update={
            "mongo_uri": "mongodb://cryptobot_app:app-pw@127.0.0.1:1/?authSource=admin",
            "mongo_read_uri": "mongodb://cryptobot_ro:ro-pw@127.0.0.1:1/?authSource=admin",
            "mongo_app_password": "app-pw",
        }
    )
    reader = service_env(final, "read")
    writer = service_env(final, "write")
    assert (
        reader["CRYPTOBOT_MONGO_URI"] == reader["CRYPTOBOT_MONGO_READ_URI"] == final.mongo_read_uri
    )
    assert not any("app-pw" in value for value in reader.values())
    assert writer["CRYPTOBOT_MONGO_URI"] == final.mongo_uri
    # Password settings are never handed on: the URIs carry the credentials.
    assert reader["CRYPTOBOT_MONGO_APP_PASSWORD"] == writer["CRYPTOBOT_MONGO_APP_PASSWORD"] == ""
