"""Fault-suite fixtures: the stream fixtures (per-test topics and groups, consumer threads)."""

from tests.core.stream.conftest import consumer_thread, stream_settings

__all__ = ["consumer_thread", "stream_settings"]
