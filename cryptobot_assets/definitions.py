"""The Dagster code location: history and stream definitions merged into one."""

from __future__ import annotations

import dagster as dg

from cryptobot_assets.history.definitions import defs as history_defs
from cryptobot_assets.stream.definitions import defs as stream_defs

defs = dg.Definitions.merge(history_defs, stream_defs)
