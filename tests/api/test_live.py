"""Live push over a real uvicorn socket, and store-down 503 then recovery by itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymongo import MongoClient

from cryptobot_api.main import create_app
from cryptobot_core import services
from cryptobot_core.intervals import Interval
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore
from tests.api import seed
from tests.api.conftest import Filled, make_settings


class ServerThread:
    """uvicorn serving an app on a free port, in a thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        self.port = services.free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from SSE lines; comments and retry hints are skipped."""
    event, data = "message", ""
    for line in lines:
        if line == "":
            if data:
                yield event, data
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def test_stream_pushes_a_candle_written_while_listening(filled: Filled) -> None:
    stream = CandleStore(filled.db, STREAMING_1M)
    new_open = seed.STREAM_END + Interval.M1.ms
    fresh = filled.market.klines(
        "BTCUSDT", Interval.M1, new_open, new_open, 1, now_ms=new_open + 10_000
    )
    try:
        with (
            ServerThread(create_app(filled.settings)) as srv,
            httpx.Client(base_url=srv.url, timeout=httpx.Timeout(30.0)) as http,
            http.stream("GET", "/stream/BTCUSDT") as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = sse_events(resp.iter_lines())
            kind, data = next(events)
            # The newest stored candle first, so a client starts with the current state.
            assert kind == "candle" and json.loads(data)["open_time"] == seed.iso(seed.STREAM_END)
            stream.upsert(fresh)  # written by the core's own writer while the client listens
            kind, data = next(events)
            candle = json.loads(data)
            assert kind == "candle"
            assert candle["open_time"] == seed.iso(new_open)
            assert candle["close"] == str(fresh[0].close) and candle["is_closed"] is False
            # A newer version of the same candle is pushed too.
            closed = filled.market.klines(
                "BTCUSDT", Interval.M1, new_open, new_open, 1, now_ms=new_open + 120_000
            )
            stream.upsert(closed)
            kind, data = next(events)
            assert json.loads(data)["open_time"] == seed.iso(new_open)
            assert json.loads(data)["is_closed"] is True
    finally:
        filled.db[STREAMING_1M].delete_many({"open_time": {"$gt": seed.ms_to_dt(seed.STREAM_END)}})


def test_live_clients_are_capped_and_each_connection_has_a_lifetime(filled: Filled) -> None:
    settings = filled.settings.model_copy(
        update={"api_stream_max_clients": 1, "api_stream_max_lifetime_s": 2.0}
    )
    with (
        ServerThread(create_app(settings)) as srv,
        httpx.Client(base_url=srv.url, timeout=httpx.Timeout(30.0)) as http,
    ):
        with http.stream("GET", "/stream/BTCUSDT") as first:
            assert first.status_code == 200
            events = sse_events(first.iter_lines())
            assert next(events)[0] == "candle"
            over = http.get("/stream/ETHUSDT")
            assert over.status_code == 503 and over.headers["retry-after"] == "30"
            error = over.json()["error"]
            assert (
                error["code"] == "too_many_clients" and "at most 1 live clients" in error["message"]
            )
            kind, data = next(e for e in events if e[0] != "candle")
            assert kind == "end" and json.loads(data)["reconnect"] is True
        # The ended connection frees its place.
        deadline = time.monotonic() + 10
        while True:
            with http.stream("GET", "/stream/ETHUSDT") as again:
                if again.status_code == 200 or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        assert again.status_code == 200


@pytest.mark.slow
def test_store_down_gives_503_then_the_api_recovers(tmp_path: Path) -> None:
    port = services.free_port()
    storage = tmp_path / "store"
    proc = services.secantus(port, storage, tmp_path / "secantus.log").start()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    settings = make_settings(uri, "recovery", tmp_path)
    day = seed.klines(
        seed.market(), "BTCUSDT", Interval.M15, seed.HISTORY_START, seed.HISTORY_START + 86_400_000
    )
    mongo: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    CandleStore(mongo[settings.database], HISTORICAL_15M).insert_missing(day)
    mongo.close()
    params = {"start": seed.HISTORY_START, "limit": 10}
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            before = client.get("/candles/BTCUSDT", params=params)
            assert before.status_code == 200 and len(before.json()["candles"]) == 10
            proc.stop()
            down = client.get("/candles/BTCUSDT", params=params)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "store_unavailable"
            assert "Traceback" not in down.text
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["store"]["reachable"] is False and ready.json()["store"]["error"]
            assert client.get("/health").status_code == 200
            assert "cryptobot_store_up 0.0" in client.get("/metrics").text
            proc = services.secantus(port, storage, tmp_path / "secantus.log").start()
            deadline = time.monotonic() + 60
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "the API did not recover"
                time.sleep(0.5)
            after = client.get("/candles/BTCUSDT", params=params)
            assert after.status_code == 200 and after.json() == before.json()
    finally:
        proc.stop()
