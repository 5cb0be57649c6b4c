"""What a running stack hands on: each child's environment, and ``<data_dir>/stack.env``.

The launcher decides everything once (exchange, ports, URIs with credentials) and passes
every setting on as ``CRYPTOBOT_*`` variables: to its children through their environment,
to commands in other terminals through ``stack.env`` (0600, removed when the stack stops),
which ``cryptobot_core.settings.get_settings()`` layers under the explicit environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

from pydantic import SecretStr

from cryptobot_core.launcher.pidfile import running_launcher
from cryptobot_core.launcher.specs import SERVICE_NAMES, Access, local_host
from cryptobot_core.settings import Settings

STACK_ENV = "stack.env"


def stack_settings(settings: Settings, started: Iterable[str] = SERVICE_NAMES) -> Settings:
    """The settings every child must see: absolute data dir, effective URIs and local URLs."""
    started = set(started)
    update: dict[str, object] = {
        "data_dir": settings.data_dir.expanduser().resolve(),
        "mongo_uri": settings.effective_mongo_uri,
        "mongo_read_uri": settings.effective_mongo_read_uri,
        "kafka_bootstrap_servers": settings.effective_kafka_bootstrap,
    }
    if "api" in started:
        update["api_url"] = f"http://{local_host(settings.api_host)}:{settings.api_port}"
        # The dashboard's origin must be allowed whatever port it was moved to.
        origins = list(settings.api_cors_origins)
        for host in ("localhost", "127.0.0.1"):
            origin = f"http://{host}:{settings.dashboard_port}"
            if origin not in origins:
                origins.append(origin)
        update["api_cors_origins"] = origins
    if "dagster" in started:
        update["dagster_url"] = f"http://127.0.0.1:{settings.dagster_port}"
        # `make up` runs the whole system: the live stream starts with Dagster unless the
        # user chose otherwise (tests and library use keep the sensor stopped by default).
        if "stream_supervisor_autostart" not in settings.model_fields_set:
            update["stream_supervisor_autostart"] = True
    return settings.model_copy(update=update)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as a ``CRYPTOBOT_*`` variable; unset ones as empty values.

    Password settings are always handed on empty: the URIs carry the credentials, and an
    empty value also hides a password the launcher's own environment may hold.
    """
    env: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None or SecretStr in (field.annotation, *get_args(field.annotation)):
            text = ""
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"CRYPTOBOT_{name.upper()}"] = text
    return env


def service_env(settings: Settings, access: Access) -> dict[str, str]:
    """The ``CRYPTOBOT_*`` environment of a child: readers never get the writers' URI."""
    return settings_env(settings if access == "write" else settings.read_only())


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_stack_env(settings: Settings) -> Path:
    """Write the writers' settings to ``<data_dir>/stack.env``, readable by the owner only."""
    path = settings.data_dir / STACK_ENV
    lines = [
        "# Written by `cryptobot up` for the commands of other terminals; removed when it stops.",
        "# Holds credentials: keep it private (mode 0600).",
        *(f"{key}={_quoted(value)}" for key, value in sorted(settings_env(settings).items())),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write("\n".join(lines) + "\n")
    return path


def remove_stack_env(data_dir: Path) -> None:
    """Remove ``stack.env`` (the stack stopped)."""
    (data_dir / STACK_ENV).unlink(missing_ok=True)


def running_stack_env(data_dir: Path) -> Path | None:
    """``<data_dir>/stack.env`` when the ``cryptobot up`` that wrote it is still alive."""
    data_dir = data_dir.expanduser().resolve()
    path = data_dir / STACK_ENV
    if path.exists() and running_launcher(data_dir) is not None:
        return path
    return None
