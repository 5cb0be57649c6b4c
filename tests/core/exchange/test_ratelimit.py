"""Unit tests of the weight budget's pacing logic (pure logic: a fake clock)."""

from __future__ import annotations

import threading

import pytest

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange import WeightBudget


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 1_000_020.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def test_reserves_until_capacity_then_waits_for_next_window() -> None:
    clock = FakeClock(start=600.0)  # window 10 starts at 600 s
    budget = WeightBudget(100, safety_margin=0.1, clock=clock.time, sleep=clock.sleep)
    assert budget.capacity == 90
    for _ in range(45):
        budget.release(budget.acquire(2))
    assert budget.used() == 90
    assert clock.slept == []
    budget.acquire(2)  # does not fit: must wait for the window starting at 660 s
    assert clock.now >= 660.0
    assert budget.used() == 2
    assert budget.stats.waits == 1


def test_server_header_higher_than_ours_is_adopted() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(100, safety_margin=0.0, clock=clock.time, sleep=clock.sleep)
    r = budget.acquire(2)
    budget.observe(r, 99)  # another process on the same IP used weight
    assert budget.used() == 99
    budget.acquire(2)
    assert clock.now >= 660.0, "the next request must wait for a new window"


def test_lower_server_header_keeps_our_reservations() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(100, clock=clock.time, sleep=clock.sleep)
    r = budget.acquire(2)
    budget.acquire(2)  # in flight, not yet counted by the server
    budget.observe(r, 2)
    assert budget.used() == 4


def test_header_from_previous_window_is_ignored() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(100, clock=clock.time, sleep=clock.sleep)
    r = budget.acquire(2)
    clock.now = 661.0
    budget.release(r, 80)
    assert budget.used() == 2  # only the request that was in flight at the roll


def test_pause_blocks_every_caller_for_retry_after() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(100, clock=clock.time, sleep=clock.sleep)
    budget.pause(7.5)
    budget.acquire(1)
    assert clock.now >= 607.5


def test_set_limit_from_exchange_info() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(clock=clock.time, sleep=clock.sleep)
    assert budget.limit == 6000 and not budget.limit_known
    budget.set_limit(50, 60.0)
    assert budget.limit == 50 and budget.limit_known
    assert budget.capacity == 45


def test_concurrent_threads_never_exceed_capacity_in_a_window() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(60, safety_margin=0.0, clock=clock.time, sleep=clock.sleep)
    per_window: dict[int, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            r = budget.acquire(3)
            budget.release(r)
            with lock:
                per_window[r.window] = per_window.get(r.window, 0) + r.weight

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(per_window.values()) == 6 * 20 * 3
    assert max(per_window.values()) <= 60
    assert len(per_window) >= 6  # 360 weight / 60 per window


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0}, {"limit": 10, "safety_margin": 1.0}, {"limit": 10, "window_s": 0}]
)
def test_bad_budget_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        WeightBudget(**kwargs)  # type: ignore[arg-type]


def test_requests_in_flight_count_in_the_next_window() -> None:
    clock = FakeClock(start=600.0)
    budget = WeightBudget(100, safety_margin=0.0, clock=clock.time, sleep=clock.sleep)
    done = budget.acquire(10)
    late = budget.acquire(30)  # still in flight when the minute ticks over
    budget.release(done)
    clock.now = 660.0
    assert budget.used() == 30
    budget.release(late)
    assert budget.used() == 30  # already counted in this window; the server may count it here
