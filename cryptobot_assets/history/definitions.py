"""history definitions (filled in by the history issue)."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
