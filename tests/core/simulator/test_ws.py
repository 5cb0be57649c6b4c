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


def rest_row_at(
    sim: SimulatorServer, symbol: str, interval: str, open_ms: int, now: int
) -> list[Any]:
    return sim.market.klines_rows(symbol, interval, open_ms, open_ms, 1, now_ms=now)[0]


def test_updates_carry_the_open_candle_as_of_their_event_time(
    make_simulator: MakeSimulator,
) -> None:
    # 60x: a simulated minute per real second, so updates land at many different instants.
    sim = make_simulator(clock=SimClock.accelerated(NOW, 60), ws_update_interval_s=30)
    url = f"{sim.ws_url}/stream?streams=btcusdt@kline_1m/ethusdt@kline_15m/solusdt@kline_1h"
    checked = dict.fromkeys(["btcusdt@kline_1m", "ethusdt@kline_15m", "solusdt@kline_1h"], 0)
    finals = 0
    with connect(url) as ws:
        while min(checked.values()) < 3 or finals < 3:
            msg = recv_json(ws)
            k = msg["data"]["k"]
            row = Candle.from_ws_event(msg["data"]).to_rest_row()
            assert row == rest_row_at(sim, k["s"], k["i"], k["t"], msg["data"]["E"])
            if k["x"]:
                finals += 1
            else:
                checked[msg["stream"]] += 1


def test_outage_minutes_send_no_final(make_simulator: MakeSimulator) -> None:
    start = Interval.M1.floor(NOW) + 2 * 60_000
    sim = make_simulator(
        clock=SimClock.accelerated(NOW, 600), outages=[(start, start + 3 * 60_000, "BTCUSDT")]
    )
    opens: list[int] = []
    with connect(f"{sim.ws_url}/ws/btcusdt@kline_1m") as ws:
        while not opens or opens[-1] < start + 5 * 60_000:
            event = recv_json(ws)
            if event["k"]["x"]:
                opens.append(event["k"]["t"])
            else:
                assert not start <= event["k"]["t"] < start + 3 * 60_000
    assert start - 60_000 in opens and start + 3 * 60_000 in opens
    assert not {start, start + 60_000, start + 120_000} & set(opens)


def test_stalling_some_streams_keeps_the_others_flowing(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=SimClock.accelerated(NOW, 120), ws_update_interval_s=0.2)
    url = f"{sim.ws_url}/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m/solusdt@kline_1m"
    with connect(url) as ws:
        recv_until(ws, lambda m: m["stream"] == "ethusdt@kline_1m")
        sim.faults.stall_streams("ethusdt@kline_1m", "SOLUSDT")
        assert sim.faults.stalled_streams == {"ethusdt@kline_1m", "SOLUSDT"}
        time.sleep(0.2)  # frames already in flight
        while True:
            try:
                ws.recv(timeout=0.05)
            except TimeoutError:
                break
        seen: dict[str, int] = {}
        finals = 0
        deadline = time.monotonic() + 2.0  # 4 simulated minutes: finals were due meanwhile
        while time.monotonic() < deadline:
            msg = recv_json(ws)
            seen[msg["stream"]] = seen.get(msg["stream"], 0) + 1
            finals += msg["data"]["k"]["x"]
        assert set(seen) == {"btcusdt@kline_1m"} and finals >= 2
        assert sim.stats.ws_frames_stalled > 0
        sim.faults.resume_streams("ethusdt@kline_1m")
        recv_until(ws, lambda m: m["stream"] == "ethusdt@kline_1m")
        sim.faults.resume_streams()
        recv_until(ws, lambda m: m["stream"] == "solusdt@kline_1m")


def test_announced_shutdown_lets_a_new_connection_overlap(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(ws_update_interval_s=0.2)
    with (
        connect(f"{sim.ws_url}/stream?streams=btcusdt@kline_1m") as old,
        connect(f"{sim.ws_url}/ws/ethusdt@kline_1m") as raw,
    ):
        recv_json(old)
        recv_json(raw)
        assert sim.faults.announce_shutdown(grace_s=1.5) == 2
        notice = recv_until(old, lambda m: m.get("stream") == "!serverShutdown")
        assert notice["data"]["e"] == "serverShutdown" and isinstance(notice["data"]["E"], int)
        assert recv_until(raw, lambda m: m.get("e") == "serverShutdown")["E"] == NOW
        # The server still runs: a replacement connects, and the old one keeps streaming
        # during the grace period.
        with connect(f"{sim.ws_url}/stream?streams=btcusdt@kline_1m") as new:
            assert recv_json(new)["data"]["e"] == "kline"
            assert recv_json(old)["data"]["e"] == "kline"
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    old.recv(timeout=5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            time.sleep(0.5)
            assert recv_json(new)["data"]["e"] == "kline"  # the replacement was not closed
    assert sim.stats.ws_shutdowns_announced == 2 and sim.stats.ws_disconnects_shutdown >= 1
    with pytest.raises(ValueError, match="grace_s"):
        sim.faults.announce_shutdown(grace_s=-1)


def test_raw_frames_go_to_the_connections_of_a_stream(simulator: SimulatorServer) -> None:
    with (
        connect(f"{simulator.ws_url}/ws/btcusdt@kline_1m") as btc,
        connect(f"{simulator.ws_url}/stream?streams=ethusdt@kline_1m") as eth,
    ):
        recv_json(btc)
        recv_json(eth)
        poison = '{"e":"kline","E":1,"s":"BTCUSDT","k":{"c":"1e999999","x":"false"}}'
        assert simulator.faults.send_raw(poison, "btcusdt@kline_1m") == 1
        assert recv_until(btc, lambda m: m.get("E") == 1) == json.loads(poison)
        assert simulator.faults.send_raw(b"\xff\xfe not utf-8", "ETHUSDT") == 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            frame = eth.recv(timeout=5)
            if isinstance(frame, bytes):
                assert frame == b"\xff\xfe not utf-8"
                break
        else:
            raise AssertionError("binary frame did not arrive")
        deep = "[" * 20_000 + "]" * 20_000
        assert simulator.faults.send_raw(deep) == 2
        for ws in (btc, eth):
            while ws.recv(timeout=5) != deep:
                pass
    assert simulator.stats.ws_raw_frames_sent == 4


def test_a_banned_ip_cannot_open_a_websocket(simulator: SimulatorServer) -> None:
    simulator.faults.ban_ip(600)
    r = httpx.get(
        f"{simulator.url}/ws/btcusdt@kline_1m",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )
    assert r.status_code == 418 and r.headers["Retry-After"] == "600"
    assert r.json()["code"] == -1003 and "banned" in r.json()["msg"]
    assert simulator.stats.ws_handshakes_refused == 1
    assert simulator.stats.requests_during_ban == 1
    simulator.clock.advance(600_000)
    with connect(f"{simulator.ws_url}/ws/btcusdt@kline_1m") as ws:
        assert recv_json(ws)["e"] == "kline"


def test_a_whole_market_is_served_on_two_connections(make_simulator: MakeSimulator) -> None:
    from cryptobot_core.simulator import generated_symbols

    sim = make_simulator(symbols=generated_symbols(1500))
    streams = [f"{s.symbol.lower()}@kline_1m" for s in sim.config.symbols if s.status == "TRADING"]
    seen: set[str] = set()

    async def one(part: list[str]) -> None:
        in_url, by_subscribe = part[:600], part[600:]
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(in_url)}") as ws,
        ):
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": by_subscribe, "id": 1}))
            while not set(part) <= seen:
                msg = json.loads(await ws.receive_str(timeout=20))
                if "stream" in msg:
                    assert msg["data"]["E"] == NOW
                    seen.add(msg["stream"])

    async def both() -> None:
        await asyncio.gather(one(streams[:750]), one(streams[750:]))

    asyncio.run(both())
    assert len(seen) == 1500
    too_many = "/".join(streams[:1025])
    r = httpx.get(
        f"{sim.url}/stream?streams={too_many}",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )
    assert r.status_code == 400 and "at most 1024 streams" in r.json()["msg"]
