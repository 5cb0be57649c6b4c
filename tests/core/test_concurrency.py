"""SingleFlight: concurrent callers with one key share one execution."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cryptobot_core.concurrency import SingleFlight
from cryptobot_core.errors import StoreUnavailable


def test_single_flight_shares_one_read_between_concurrent_callers() -> None:
    flights = SingleFlight()
    release, calls = threading.Event(), []

    def read() -> int:
        calls.append(1)
        release.wait(5)
        return len(calls)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flights.do, "BTCUSDT", read) for _ in range(8)]
        while not calls:
            threading.Event().wait(0.01)
        threading.Event().wait(0.1)  # let the others join the flight in progress
        release.set()
        results = [f.result(5) for f in futures]
    assert results == [1] * 8 and len(calls) == 1
    assert flights.do("BTCUSDT", read) == 2  # a later call reads again


def test_single_flight_hands_the_error_to_every_waiter() -> None:
    flights = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def failing() -> int:
        started.set()
        release.wait(5)
        raise StoreUnavailable("document store unreachable")

    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(flights.do, "k", failing)
        started.wait(5)
        followers = [pool.submit(flights.do, "k", failing) for _ in range(3)]
        threading.Event().wait(0.1)
        release.set()
        for future in [leader, *followers]:
            with pytest.raises(StoreUnavailable):
                future.result(5)
