"""history definitions (filled in by the history issue)."""

from __future__ import annotations

import dagster as dg

from cryptobot_core.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """The history assets, checks, jobs, schedules and sensors."""
    return dg.Definitions()
