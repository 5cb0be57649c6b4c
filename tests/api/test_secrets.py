"""No password in any API answer or log line, even while the store is failing."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cryptobot_api.main import create_app
from tests.api.conftest import make_settings

PASSWORD = "Pw-9f3c1e-never-shown"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_store_down_answers_503_and_logs_no_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"mongodb://reader:{PASSWORD}@127.0.0.1:{_closed_port()}/?directConnection=true"
    settings = make_settings(uri, "cryptobot", tmp_path)
    caplog.set_level(logging.DEBUG)
    answers = []
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for path in ("/candles/BTCUSDT", "/stats/BTCUSDT", "/symbols", "/ready", "/health"):
            answers.append(client.get(path))
    store_paths = answers[:3]
    assert all(a.status_code == 503 for a in store_paths), [a.text for a in store_paths]
    for a in store_paths:
        error = a.json()["error"]
        assert error["code"] == "store_unavailable" and "retry" in error["message"]
    seen = "\n".join(a.text for a in answers) + "\n" + caplog.text
    assert "reader:***@" in caplog.text  # the start-up line names the store, redacted
    assert PASSWORD not in seen
