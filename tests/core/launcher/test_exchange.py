"""The `auto` exchange decision over real HTTP: Binance when it answers, else the simulator."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptobot_core.launcher import resolve_exchange
from cryptobot_core.services import free_port
from cryptobot_core.settings import load_settings


class PingHandler(http.server.BaseHTTPRequestHandler):
    """Answers /api/v3/ping with ``status``, anything else with 404."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"{}" if self.path == "/api/v3/ping" else b'{"code":-1,"msg":"no"}'
        self.send_response(self.status if self.path == "/api/v3/ping" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[tuple[str, type[PingHandler]]]:
    """A real HTTP server answering /api/v3/ping with a settable status."""
    handler = type("Handler", (PingHandler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_auto_uses_binance_when_ping_answers(
    clean_env: Path, ping_server: tuple[str, type[PingHandler]]
) -> None:
    url, _ = ping_server
    resolved = resolve_exchange(load_settings(exchange="auto", binance_rest_url=url))
    assert resolved.exchange == "binance"
    assert resolved.exchange_fallback_reason is None
    assert resolved.database == "cryptobot"


def test_auto_falls_back_to_the_simulator_loudly(
    clean_env: Path, ping_server: tuple[str, type[PingHandler]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = ping_server
    handler.status = 503
    resolved = resolve_exchange(load_settings(exchange="auto", binance_rest_url=url))
    assert resolved.exchange == "sim" and resolved.database == "cryptobot_sim"
    assert resolved.exchange_fallback_reason is not None
    assert "HTTP 503" in resolved.exchange_fallback_reason
    assert "USING THE BUILT-IN SIMULATOR" in caplog.text

    closed = f"http://127.0.0.1:{free_port()}"
    resolved = resolve_exchange(load_settings(exchange="auto", binance_rest_url=closed))
    assert resolved.exchange == "sim"
    assert "did not answer" in (resolved.exchange_fallback_reason or "")


def test_explicit_exchange_is_never_probed(clean_env: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for choice in ("sim", "binance"):
        resolved = resolve_exchange(load_settings(exchange=choice, binance_rest_url=closed))
        assert resolved.exchange == choice and resolved.exchange_fallback_reason is None
