"""stream definitions (filled in by the stream issue)."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
