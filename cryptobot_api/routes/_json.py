"""A JSON response for bodies the core already made JSON-ready (skips re-validation)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response


class CoreJSONResponse(Response):
    """Compact JSON of a core-built body; the route's response_model documents its shape."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise without pydantic: the core returns only str, int, float, bool and None."""
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
