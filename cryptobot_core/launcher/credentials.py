"""Least privilege for the embedded store: its users, their passwords, and provisioning.

The application users are defined once, in ``mongo_users.json`` (``deploy/mongo-init.js``
creates the same users in the compose MongoDB from the same file): the app user
(``readWrite``) for writers and the read-only user (``read``) for readers, each on the
database and its ``_sim`` twin. The embedded store also has an admin user (``root``, like
the compose stack's root user) that only the launcher logs in as, to create and update the
other two at every start.

Passwords come from ``CRYPTOBOT_MONGO_APP_PASSWORD`` / ``CRYPTOBOT_MONGO_READONLY_PASSWORD``
when set, else from ``<data_dir>/secrets/`` (generated on the first start; folder 0700,
files 0600). They never appear in output: URIs are shown through ``redact()``.

First start (empty store): the store runs once without ``--auth`` on 127.0.0.1, only long
enough to create the admin user; from then on it always runs with ``--auth`` and the
store's ``ready`` hook brings the app and read-only users in line with the definitions
(``reconcile_users``). Later starts reuse the secrets. A missing secret next to an existing
store is an error that says what to do; ``cryptobot up --reset-credentials`` gives every
user a new password and keeps the data.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher.specs import local_mongo_uri, secantus, store_path
from cryptobot_core.launcher.stackenv import STACK_ENV
from cryptobot_core.settings import Settings, redact

USERS_FILE = Path(__file__).with_name("mongo_users.json")
ADMIN_NAME = "cryptobot_admin"
_AUTH_FAILED = 18
_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class StoreUser:
    """A user of the document store and how a deployment supplies its credentials."""

    key: str
    role: str
    name: str
    # Settings fields: where its password may be given, and the URI that logs in as it.
    password_setting: str | None = None
    uri_setting: str | None = None

    def roles(self, database: str) -> list[dict[str, str]]:
        """The roles to grant: ``root`` for the admin, else the role on the db and its twin."""
        if self.role == "root":
            return [{"role": "root", "db": "admin"}]
        return [{"role": self.role, "db": db} for db in (database, f"{database}_sim")]


ADMIN = StoreUser(key="admin", role="root", name=ADMIN_NAME)


@lru_cache(maxsize=1)
def app_users() -> tuple[StoreUser, ...]:
    """The application users, as defined in mongo_users.json."""
    spec = json.loads(USERS_FILE.read_text())
    return tuple(
        StoreUser(
            key=user["key"],
            role=user["role"],
            name=user["default_name"],
            password_setting=user["password_setting"],
            uri_setting=user["uri_setting"],
        )
        for user in spec["users"]
    )


def embedded_uri(settings: Settings, user: str, password: str) -> str:
    """URI of the embedded store, logged in as ``user``."""
    login = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return (
        f"mongodb://{login}@127.0.0.1:{settings.mongo_port}/?directConnection=true&authSource=admin"
    )


class Secrets:
    """``<data_dir>/secrets/``: one file per generated password, readable by the owner only."""

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.data_dir.expanduser().resolve() / "secrets"

    def path(self, user: StoreUser) -> Path:
        """The file holding ``user``'s password."""
        return self.folder / f"mongo_{user.key}_password"

    def read(self, user: StoreUser) -> str | None:
        """The stored password, or None when there is none."""
        try:
            return self.path(user).read_text().strip() or None
        except FileNotFoundError:
            return None

    def write(self, user: StoreUser, password: str) -> None:
        """Store ``password`` in a file only the owner can read (folder 0700, file 0600)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        fd = os.open(self.path(user), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(password + "\n")


def _given(settings: Settings, user: StoreUser) -> str | None:
    if user.password_setting is None:
        return None
    value = getattr(settings, user.password_setting)
    return value.get_secret_value() if value is not None else None


def prepare_store_access(settings: Settings, log_path: Path, *, reset: bool = False) -> Settings:
    """Passwords for the embedded store's users, its admin user, and the URIs to hand out.

    Returns ``settings`` with ``mongo_uri`` (app user) and ``mongo_read_uri`` (read-only
    user) pointing at the embedded store. Starts the store briefly without ``--auth`` when
    it has no admin user yet (first start, or ``reset``); the store's port must be free.
    """
    store = store_path(settings)
    existing = store.is_dir() and any(store.iterdir())
    vault = Secrets(settings)
    passwords: dict[str, str] = {}
    generated: list[StoreUser] = []
    for user in (ADMIN, *app_users()):
        known = _given(settings, user) or (None if reset else vault.read(user))
        if known is None:
            known = secrets.token_urlsafe(24)
            generated.append(user)
        passwords[user.key] = known
    needs_admin = reset or not existing or ADMIN in generated
    if existing and generated and not needs_admin:
        # The admin is there, so the store has users whose passwords were lost.
        raise ServiceError(_lost_secrets(settings, vault, generated))
    if needs_admin:
        _create_admin(settings, passwords[ADMIN.key], log_path, replace=reset, vault=vault)
    for user in generated:
        vault.write(user, passwords[user.key])
    update: dict[str, Any] = {
        user.uri_setting: embedded_uri(settings, user.name, passwords[user.key])
        for user in app_users()
        if user.uri_setting
    }
    return settings.model_copy(update=update)


def _lost_secrets(settings: Settings, vault: Secrets, users: list[StoreUser]) -> str:
    files = ", ".join(str(vault.path(u)) for u in users)
    settable = [f"CRYPTOBOT_{u.password_setting.upper()}" for u in users if u.password_setting]
    alternative = f", set {' / '.join(settable)} to the password the store has" if settable else ""
    return (
        f"document store: {store_path(settings)} already has users, but their password "
        f"file(s) are missing: {files}. Restore them from a backup{alternative}, or run "
        f"`cryptobot up --reset-credentials` to give every user a new password (the data is "
        f"kept; programs that used the old URIs need the new ones from "
        f"{vault.folder.parent / STACK_ENV})"
    )


@contextmanager
def _client(uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=_TIMEOUT_MS, connectTimeoutMS=_TIMEOUT_MS
    )
    try:
        yield client
    finally:
        client.close()


def _create_admin(
    settings: Settings, password: str, log_path: Path, *, replace: bool, vault: Secrets
) -> None:
    """Start the store without --auth just long enough to create (or reset) the admin user."""
    port = settings.mongo_port
    process = secantus(port, store_path(settings), log_path, auth=False)
    process.name = f"{process.name} (provisioning users)"
    process.start()
    try:
        with _client(local_mongo_uri(port)) as client:
            users = [u["user"] for u in client.admin.command("usersInfo")["users"]]
            if users and not replace:
                raise ServiceError(_lost_secrets(settings, vault, [ADMIN]))
            _upsert_user(client.admin, ADMIN, password, settings.mongo_db)
    except PyMongoError as exc:
        raise ServiceError(f"document store: could not create the admin user: {exc}") from exc
    finally:
        process.stop()


def _upsert_user(admin: Database[dict[str, Any]], user: StoreUser, password: str, db: str) -> None:
    name = user.name
    exists = bool(admin.command("usersInfo", name)["users"])
    command = "updateUser" if exists else "createUser"
    admin.command(command, name, pwd=password, roles=user.roles(db))


def _login(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.username is None or parts.password is None:
        raise ServiceError(f"internal: {redact(uri)} carries no credentials")
    return unquote(parts.username), unquote(parts.password)


def reconcile_users(settings: Settings) -> None:
    """As the admin, make the app and read-only users accept exactly the URIs in ``settings``."""
    vault = Secrets(settings)
    admin_password = vault.read(ADMIN)
    if admin_password is None:
        raise ServiceError(f"document store: the admin password file {vault.path(ADMIN)} is gone")
    uri = embedded_uri(settings, ADMIN.name, admin_password)
    try:
        with _client(uri) as client:
            for user in app_users():
                assert user.uri_setting is not None
                name, password = _login(getattr(settings, user.uri_setting))
                if name != user.name:
                    raise ServiceError(f"internal: {user.uri_setting} logs in as {name}")
                _upsert_user(client.admin, user, password, settings.mongo_db)
    except OperationFailure as exc:
        if exc.code == _AUTH_FAILED:
            raise ServiceError(
                f"document store: the admin password in {vault.path(ADMIN)} is not the one "
                f"{store_path(settings)} knows. Restore the right file, or run `cryptobot up "
                f"--reset-credentials` to give every user a new password (the data is kept)"
            ) from None
        raise ServiceError(f"document store: could not set up its users: {exc}") from exc
    except PyMongoError as exc:
        raise ServiceError(f"document store: could not set up its users: {exc}") from exc
