"""The dashboard's own settings: where the API and the Dagster UI are, from the environment.

The dashboard talks to the rest of the system over HTTP only, so these two URLs are all it
needs; it reads them itself instead of importing the project's settings. ``cryptobot up``
hands them to the dashboard as environment variables; a ``.env`` file is not read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

API_URL_VAR = "CRYPTOBOT_API_URL"
DAGSTER_URL_VAR = "CRYPTOBOT_DAGSTER_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"


class ConfigError(ValueError):
    """A setting is unusable; ``str()`` is one line: the variable, its value, what is allowed."""


@dataclass(frozen=True)
class DashboardConfig:
    """Where the CryptoBot API and the Dagster UI answer (no trailing slash)."""

    api_url: str = DEFAULT_API_URL
    dagster_url: str = DEFAULT_DAGSTER_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardConfig:
        """Read CRYPTOBOT_API_URL and CRYPTOBOT_DAGSTER_URL; raise ConfigError when one is wrong."""
        env = os.environ if environ is None else environ
        return cls(
            api_url=_http_url(env, API_URL_VAR, DEFAULT_API_URL),
            dagster_url=_http_url(env, DAGSTER_URL_VAR, DEFAULT_DAGSTER_URL),
        )


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    problem = ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it has no host"
        elif parts.query or parts.fragment:
            problem = "it must not have a query or fragment"
    if problem:
        raise ConfigError(f"{name}={raw!r} is not a usable URL ({problem}); use e.g. {default}")
    return raw.rstrip("/")
