"""WebSocket contract: raw and combined kline streams, finals, control messages, limits, faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle
from cryptobot_core.simulator import Faults, SimClock, SimulatorServer
from tests.fixtures.simulator import SIM_NOW_MS, MakeSimulator

NOW = SIM_NOW_MS
KLINE_KEYS = {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws: ClientConnection, pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("expected message did not arrive")
        msg = recv_json(ws, left)
        if pred(msg):
            return msg


def assert_kline_event(event: dict[str, Any], symbol: str, interval: str) -> None:
    assert set(event) == {"e", "E", "s", "k"} and event["e"] == "kline" and event["s"] == symbol
    k = event["k"]
    assert set(k) == KLINE_KEYS and k["s"] == symbol and k["i"] == interval
    for key in ("t", "T", "f", "L", "n", "E"):
        assert isinstance(k.get(key, event.get(key)), int)
    for key in ("o", "c", "h", "l", "v", "q", "V", "Q", "B"):
        assert isinstance(k[key], str)
    assert isinstance(k["x"], bool) and k["T"] == Interval(interval).close_time(k["t"])


def rest_row(server: SimulatorServer, symbol: str, interval: str, open_ms: int) -> list[Any]:
    r = httpx.get(
        f"{server.url}/api/v3/klines",
        params={"symbol": symbol, "interval": interval, "startTime": open_ms, "endTime": open_ms},
    )
    rows = r.json()
    assert len(rows) == 1
    return list(rows[0])


def test_raw_stream_updates_then_final_equal_to_rest(simulator: SimulatorServer) -> None:
    with connect(f"{simulator.ws_url}/ws/btcusdt@kline_1m") as ws:
        first = recv_json(ws)
        assert_kline_event(first, "BTCUSDT", "1m")
        t = Interval.M1.floor(NOW)
        assert first["k"]["t"] == t and first["k"]["x"] is False and first["E"] == NOW
        current = simulator.market.current("BTCUSDT", "1m")
        assert current is not None and first["k"]["c"] == f"{current.close:f}"
        simulator.clock.advance(60_000)
        final = recv_until(ws, lambda m: m["k"]["x"])
        assert final["k"]["t"] == t
        assert Candle.from_ws_event(final).to_rest_row() == rest_row(simulator, "BTCUSDT", "1m", t)


def test_combined_stream_wraps_events(simulator: SimulatorServer) -> None:
    url = f"{simulator.ws_url}/stream?streams=btcusdt@kline_1m/ethusdt@kline_5m"
    with connect(url) as ws:
        seen = {}
        while len(seen) < 2:
            msg = recv_json(ws)
            assert set(msg) == {"stream", "data"}
            seen[msg["stream"]] = msg["data"]
        assert_kline_event(seen["btcusdt@kline_1m"], "BTCUSDT", "1m")
        assert_kline_event(seen["ethusdt@kline_5m"], "ETHUSDT", "5m")


def test_every_final_arrives_in_order_under_an_accelerated_clock(
    make_simulator: MakeSimulator,
) -> None:
    # 20 simulated minutes per real second: a few seconds cover dozens of closed minutes.
    sim = make_simulator(clock=SimClock.accelerated(NOW, 1200))
    finals: dict[str, list[dict[str, Any]]] = {"btcusdt@kline_1m": [], "solusdt@kline_3m": []}
    updates = dict.fromkeys(finals, 0)
    url = f"{sim.ws_url}/stream?streams=btcusdt@kline_1m/solusdt@kline_3m"
    started = time.monotonic()
    with connect(url) as ws:
        while len(finals["btcusdt@kline_1m"]) < 40:
            msg = recv_json(ws)
            if msg["data"]["k"]["x"]:
                finals[msg["stream"]].append(msg["data"])
            else:
                updates[msg["stream"]] += 1
    elapsed = time.monotonic() - started
    for stream, events in finals.items():
        iv = Interval(stream.split("_")[1])
        opens = [e["k"]["t"] for e in events]
        assert opens == [opens[0] + i * iv.ms for i in range(len(opens))], "gap or duplicate"
        symbol = stream.split("@")[0].upper()
        expected = sim.market.klines(
            symbol, iv, opens[0], opens[-1], 1000, now_ms=opens[-1] + iv.ms
        )
        assert [Candle.from_ws_event(e).to_rest_row() for e in events] == [
            c.to_rest_row() for c in expected
        ]
    # The open candle is throttled to about 2 updates per real second, finals never are.
    assert all(n <= 2 * elapsed + 3 for n in updates.values())
    last = finals["btcusdt@kline_1m"][-1]["k"]["t"]
    assert Candle.from_ws_event(finals["btcusdt@kline_1m"][-1]).to_rest_row() == rest_row(
        sim, "BTCUSDT", "1m", last
    )


def test_subscribe_unsubscribe_list(simulator: SimulatorServer) -> None:
    with connect(f"{simulator.ws_url}/ws") as ws:
        ws.send(
            json.dumps(
                {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "ethusdt@kline_1h"], "id": 1}
            )
        )
        assert recv_until(ws, lambda m: "id" in m) == {"result": None, "id": 1}
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        assert recv_until(ws, lambda m: "id" in m) == {
            "result": ["btcusdt@kline_1m", "ethusdt@kline_1h"],
            "id": 3,
        }
        event = recv_until(ws, lambda m: m.get("e") == "kline")
        assert event["s"] in {"BTCUSDT", "ETHUSDT"}
        ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 4}))
        assert recv_until(ws, lambda m: "id" in m) == {"result": None, "id": 4}
        time.sleep(0.25)  # stay under 5 incoming messages per second
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
        assert recv_until(ws, lambda m: "id" in m) == {"result": ["ethusdt@kline_1h"], "id": 5}


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        ({"method": "SUBSCRIBE", "params": ["nope@kline_1m"], "id": 1}, 2, "unknown symbol"),
        (
            {"method": "SUBSCRIBE", "params": ["BTCUSDT@kline_1m"], "id": 1},
            2,
            "invalid stream name",
        ),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@kline_7m"], "id": 1}, 2, "invalid interval"),
        ({"method": "FROB", "id": 1}, 2, "unknown variant `FROB`"),
        ({"params": [], "id": 1}, 2, "missing field `method`"),
        ({"method": "LIST_SUBSCRIPTIONS", "id": -1}, 2, "request ID"),
        ("{not json", 3, "Invalid JSON"),
    ],
)
def test_control_errors(simulator: SimulatorServer, message: Any, code: int, fragment: str) -> None:
    with connect(f"{simulator.ws_url}/ws") as ws:
        ws.send(message if isinstance(message, str) else json.dumps(message))
        reply = recv_json(ws)
        assert reply["code"] == code and fragment in reply["msg"]
        if code == 2:
            assert reply["msg"].startswith("Invalid request: ")


def test_bad_stream_in_url_is_refused(simulator: SimulatorServer) -> None:
    r = httpx.get(
        f"{simulator.url}/ws/btcusdt@depth",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )
    assert (
        r.status_code == 400 and r.json()["code"] == 2 and "invalid stream name" in r.json()["msg"]
    )


def test_more_than_five_incoming_messages_per_second_disconnects(
    simulator: SimulatorServer,
) -> None:
    with connect(f"{simulator.ws_url}/ws/btcusdt@kline_1m") as ws:
        for i in range(8):
            try:
                ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert simulator.stats.ws_disconnects_rate_limit == 1


def test_server_pings_and_drops_a_client_that_never_pongs(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(ws_ping_interval_s=0.2, ws_pong_timeout_s=1.0)

    async def silent_client() -> tuple[int, Any]:
        pings = 0
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{sim.ws_url}/ws/btcusdt@kline_1m",
                autoping=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            ) as ws,
        ):
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type is aiohttp.WSMsgType.PING:
                    pings += 1
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return pings, ws.close_code

    pings, code = asyncio.run(silent_client())
    assert pings >= 1 and code == 1008
    assert sim.stats.ws_disconnects_pong_timeout == 1
    # A client that answers pings (websockets does) stays connected past the timeout.
    with connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ws.recv(timeout=3)
    assert sim.stats.ws_disconnects_pong_timeout == 1


def test_drop_connections_cuts_every_socket(simulator: SimulatorServer) -> None:
    with (
        connect(f"{simulator.ws_url}/ws/btcusdt@kline_1m") as a,
        connect(f"{simulator.ws_url}/ws/ethusdt@kline_1m") as b,
    ):
        recv_json(a)
        recv_json(b)
        assert simulator.faults.drop_connections() == 2
        for ws in (a, b):
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=5)
    assert simulator.stats.ws_connections_opened == 2


def test_stall_keeps_the_socket_open_but_silent(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(ws_update_interval_s=0.2)
    with connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws:
        recv_json(ws)
        sim.faults.stall = True
        time.sleep(0.2)  # let the frame in flight, if any, arrive
        while True:
            try:
                ws.recv(timeout=0.1)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
        sim.faults.stall = False
        assert recv_json(ws)["e"] == "kline"


def test_malformed_frames_come_in_addition_to_real_ones(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(malformed_frame_rate=1.0, seed=1), ws_update_interval_s=0.2)
    good = bad = 0
    with connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws:
        while good < 3 or bad < 3:
            text = ws.recv(timeout=5)
            try:
                event = json.loads(text)
                Candle.from_ws_event(event)
                good += 1
            except (ValueError, KeyError):
                bad += 1
    assert sim.stats.ws_malformed_sent >= 3


def test_server_shutdown_event_on_stop(make_simulator: MakeSimulator) -> None:
    sim = make_simulator()
    with connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws:
        recv_json(ws)
        sim.stop()
        msg = recv_until(ws, lambda m: m.get("e") == "serverShutdown")
        assert isinstance(msg["E"], int)


def test_connection_is_cut_at_its_lifetime_after_every_final(make_simulator: MakeSimulator) -> None:
    # 30 simulated minutes of lifetime at 1200x: about 1.5 real seconds.
    sim = make_simulator(clock=SimClock.accelerated(NOW, 1200), ws_max_lifetime_s=1800)
    opens = []
    with (
        connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws,
        pytest.raises(ConnectionClosed) as info,
    ):
        while True:
            event = recv_json(ws)
            if event["k"]["x"]:
                opens.append(event["k"]["t"])
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert len(opens) >= 29 and opens == [opens[0] + i * 60_000 for i in range(len(opens))]
    assert sim.stats.ws_disconnects_lifetime == 1


def test_one_second_stream_final_equals_rest(simulator: SimulatorServer) -> None:
    with connect(f"{simulator.ws_url}/ws/ethusdt@kline_1s") as ws:
        first = recv_json(ws)
        assert_kline_event(first, "ETHUSDT", "1s")
        simulator.clock.advance(1_000)
        final = recv_until(ws, lambda m: m["k"]["x"])
        assert final["k"]["t"] == first["k"]["t"]
        assert Candle.from_ws_event(final).to_rest_row() == rest_row(
            simulator, "ETHUSDT", "1s", final["k"]["t"]
        )
