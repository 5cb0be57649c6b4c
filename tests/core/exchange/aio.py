"""Async helpers for the exchange tests (no pytest-asyncio in the project)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable


def run_async(fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test body in a fresh event loop."""

    @functools.wraps(fn)
    def wrapper() -> None:
        asyncio.run(fn())  # type: ignore[arg-type]

    return wrapper
