"""A symbol universe from a rule (top:N:QUOTE) against the simulator over real HTTP, kept in
a real store, and followed by the producer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange import BinanceClient
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, generated_symbols
from cryptobot_core.store import Store
from cryptobot_core.stream import producer as producer_module
from cryptobot_core.stream.producer import StreamProducer
from cryptobot_core.universe import (
    UniverseRule,
    configured_symbols,
    current_symbols,
    parse_rule,
    refresh_daily,
    status,
)
from tests.fixtures.simulator import MakeSimulator

MARKET = generated_symbols(120, seed=5)


def expected_top(url: str, count: int, quote: str) -> list[str]:
    """The rule computed from the exchange's raw answers, independently of the code."""
    info = httpx.get(f"{url}/api/v3/exchangeInfo", timeout=30).json()
    tickers = httpx.get(f"{url}/api/v3/ticker/24hr", timeout=30).json()
    volume = {t["symbol"]: Decimal(t["quoteVolume"]) for t in tickers}
    eligible = [
        s["symbol"]
        for s in info["symbols"]
        if s["status"] == "TRADING" and s["quoteAsset"] == quote
    ]
    return sorted(eligible, key=lambda s: (-volume[s], s))[:count]


def test_rules_parse_and_bad_ones_say_what_is_allowed() -> None:
    assert parse_rule("top:50:usdt") == UniverseRule(50, "USDT")
    assert parse_rule("BTCUSDT") is None
    for bad in ("top:0:USDT", "top:50", "top:x:USDT", "top:9999999:USDT", "top:5:US-DT"):
        with pytest.raises(ValidationError, match="top:N:QUOTE"):
            parse_rule(bad)


@pytest.mark.parametrize(("count", "quote"), [(10, "USDT"), (3, "BTC"), (500, "USDT")])
def test_the_rule_picks_the_highest_quote_volume_trading_symbols(
    make_simulator: MakeSimulator, settings: Settings, store: Store, count: int, quote: str
) -> None:
    sim = make_simulator(symbols=MARKET)
    rule_settings = settings.model_copy(
        update={"symbols": UniverseRule(count, quote), "sim_port": sim.port}
    )
    want = expected_top(sim.url, count, quote)
    assert want  # the generated market quotes in both
    with BinanceClient(sim.url) as client:
        assert configured_symbols(rule_settings, store, client) == want
    # Kept in the store: readers see it without asking the exchange.
    assert current_symbols(rule_settings, store) == want
    assert status(rule_settings, store).rule == f"top:{count}:{quote}"


def test_every_process_reads_the_kept_set_until_the_daily_refresh(
    make_simulator: MakeSimulator, settings: Settings, store: Store
) -> None:
    day = datetime(2026, 1, 15, 12, tzinfo=UTC)
    sim = make_simulator(symbols=MARKET, clock=SimClock.fixed(int(day.timestamp() * 1000)))
    rule_settings = settings.model_copy(update={"symbols": UniverseRule(5, "USDT")})
    # A reader before any writer resolved the rule: nothing yet, and no exchange call.
    assert current_symbols(rule_settings, store) == []
    with BinanceClient(sim.url) as client:
        first = configured_symbols(rule_settings, store, client)
        assert refresh_daily(rule_settings, store, client) is None  # resolved today already
        requests = client.stats.requests
        assert configured_symbols(rule_settings, store, client) == first
        assert client.stats.requests == requests  # read from the store
    # Weeks later the market has moved on: the refresh reports who joined and who left.
    later = day + timedelta(days=40)
    sim.stop()
    moved = make_simulator(symbols=MARKET, clock=SimClock.fixed(int(later.timestamp() * 1000)))
    with BinanceClient(moved.url) as client:
        # The refresh is due once the UTC day of the last resolution is over.
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        change = refresh_daily(rule_settings, store, client, now=tomorrow)
        assert change is not None
        now_set = expected_top(moved.url, 5, "USDT")
        assert configured_symbols(rule_settings, store, client) == now_set
    joined, left = change
    assert set(now_set) != set(first)  # the premise: the top five did change
    assert joined == sorted(set(now_set) - set(first))
    assert left == sorted(set(first) - set(now_set))


def test_the_producer_restarts_when_the_universe_changes(
    make_simulator: MakeSimulator,
    settings: Settings,
    store: Store,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = make_simulator(symbols=MARKET, clock=SimClock.real(), ws_update_interval_s=0.5)
    rule_settings = settings.model_copy(
        update={
            "symbols": UniverseRule(4, "USDT"),
            "sim_port": sim.port,
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_topic": f"universe-{sim.port}",
        }
    )
    monkeypatch.setattr(producer_module, "UNIVERSE_CHECK_S", 0.2)
    producer = StreamProducer(rule_settings)
    first = list(producer.symbols)
    assert first == expected_top(sim.url, 4, "USDT")
    stop = threading.Event()
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(stats=producer.run(stop)))
    worker.start()
    try:
        worker.join(3.0)
        assert worker.is_alive()  # the set has not changed: it keeps streaming
        assert producer.stats.sent > 0
        changed = [*first[:3], expected_top(sim.url, 5, "USDT")[4]]
        store.universe.write("top:4:USDT", changed, datetime.now(UTC))
        worker.join(15.0)
        assert not worker.is_alive(), "the producer did not stop for the new set"
        assert producer.universe_changed
    finally:
        stop.set()
        worker.join(30.0)
    follower = StreamProducer(rule_settings)  # what the supervisor starts next
    try:
        assert follower.symbols == changed
    finally:
        follower._store.close()
