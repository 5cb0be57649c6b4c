"""Launcher fixtures: a clean environment, and the stack run in-process by the launcher's code."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from cryptobot_core import launcher
from cryptobot_core.settings import Settings, get_settings


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No CRYPTOBOT_* from the caller and no .env: settings are only what a test sets."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_") and not key.startswith("CRYPTOBOT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


RunStack = Callable[..., AbstractContextManager[Settings]]


@pytest.fixture
def run_stack() -> RunStack:
    """``with run_stack(settings, skip=..., **run_kwargs) as final:`` runs ``launcher.run``
    in a thread until the block ends, yielding the settings it handed to its children."""

    @contextmanager
    def run(settings: Settings, **kwargs: Any) -> Iterator[Settings]:
        ready = threading.Event()
        stop = threading.Event()
        final: list[Settings] = []
        failure: list[BaseException] = []

        def on_ready(resolved: Settings, _endpoints: list[launcher.Endpoint]) -> None:
            final.append(resolved)
            ready.set()

        def target() -> None:
            try:
                launcher.run(settings, on_ready=on_ready, stop_event=stop, poll_s=0.2, **kwargs)
            except BaseException as exc:  # handed to the test thread below
                failure.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        ready.wait(timeout=300)
        try:
            if failure:
                raise failure[0]
            assert final, "the stack did not come up within 300 s"
            yield final[0]
        finally:
            stop.set()
            thread.join(timeout=120)
            assert not thread.is_alive(), "the stack did not stop"
        if failure:
            raise failure[0]

    return run
