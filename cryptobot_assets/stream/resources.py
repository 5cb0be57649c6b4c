"""Stream-only Dagster resources: settings for the stream loops, built from the one Settings."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
from pymongo import MongoClient

from cryptobot_core.settings import Settings, load_settings
from cryptobot_core.store import connect


class StreamResource(dg.ConfigurableResource):
    """Settings for the stream jobs, sensor and checks (CRYPTOBOT_* plus these overrides)."""

    # JSON object of Settings fields that override the environment (set by build_defs).
    overrides_json: str = "{}"

    def settings(self) -> Settings:
        """Settings read now (never at import time), with the overrides applied."""
        return load_settings(**json.loads(self.overrides_json))

    def client(self) -> MongoClient[dict[str, Any]]:
        """A new tz-aware MongoDB client (callers close it)."""
        return connect(self.settings())

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamResource:
        """A resource that rebuilds exactly ``settings`` wherever the code location runs."""
        explicit = settings.model_dump(mode="json", include=settings.model_fields_set)
        return cls(overrides_json=json.dumps(explicit, sort_keys=True))
