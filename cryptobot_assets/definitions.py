"""The Dagster code location: history and stream definitions merged into one.

Built lazily by ``@dg.definitions`` so settings are read when Dagster loads the code
location, never at import time.
"""

from __future__ import annotations

import dagster as dg

from cryptobot_assets.history.definitions import build_defs as build_history
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.definitions import build_defs as build_stream
from cryptobot_core.settings import Settings, get_settings


def build_defs(settings: Settings) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor for ``settings``.

    One settings resource serves both domains: ``Definitions.merge`` accepts a resource key
    twice only when it is the very same object.
    """
    config = CryptobotSettingsResource.from_settings(settings)
    return dg.Definitions.merge(build_history(settings, config), build_stream(settings, config))


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads (workspace.yaml points here)."""
    return build_defs(get_settings())
