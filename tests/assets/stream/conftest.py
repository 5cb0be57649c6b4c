"""Reuse the stream fixtures (per-test topics and groups)."""

from tests.core.stream.conftest import consumer_thread, stream_settings  # noqa: F401
