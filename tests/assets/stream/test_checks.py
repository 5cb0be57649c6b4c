"""The reconciliation asset check against the real store, with the simulator's exact data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.checks import reconciles_with_historical_15m
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore

DAY0 = 1_767_225_600_000  # 2026-01-01


def _load(sim: SimulatorServer, mongo_db: Any, *, tamper: bool) -> None:
    minutes = [
        c
        for t in range(DAY0, DAY0 + 45 * 60_000, 60_000)
        if (c := sim.market.minute("BTCUSDT", t)) is not None
    ]
    assert len(minutes) == 45
    # The third window lacks a minute: it must be skipped, not failed.
    del minutes[40]
    if tamper:
        minutes[3] = replace(minutes[3], volume=minutes[3].volume + Decimal("0.00001"))
    CandleStore(mongo_db, STREAMING_1M).upsert(minutes)
    quarters = sim.market.klines(
        "BTCUSDT", Interval.M15, DAY0, DAY0 + 45 * 60_000 - 1, now_ms=DAY0 + 86_400_000
    )
    assert len(quarters) == 3
    CandleStore(mongo_db, HISTORICAL_15M).insert_missing(quarters)


def _run(settings: Settings) -> dg.AssetCheckResult:
    result = reconciles_with_historical_15m(
        config=CryptobotSettingsResource.from_settings(settings)
    )
    assert isinstance(result, dg.AssetCheckResult)
    return result


def test_check_passes_when_minutes_aggregate_exactly(
    make_simulator: Callable[..., SimulatorServer], settings: Settings, mongo_db: Any
) -> None:
    sim = make_simulator(symbols=default_symbols()[:1], clock=SimClock.fixed(DAY0 + 86_400_000))
    _load(sim, mongo_db, tamper=False)
    result = _run(settings)
    assert result.passed
    assert result.metadata["windows_checked"].value == 2
    assert result.metadata["mismatches"].value == 0


def test_check_fails_and_names_the_window_and_field(
    make_simulator: Callable[..., SimulatorServer], settings: Settings, mongo_db: Any
) -> None:
    sim = make_simulator(symbols=default_symbols()[:1], clock=SimClock.fixed(DAY0 + 86_400_000))
    _load(sim, mongo_db, tamper=True)
    result = _run(settings)
    assert not result.passed
    assert result.metadata["mismatches"].value == 1
    text = str(result.metadata["first_mismatches"].value)
    assert "BTCUSDT 2026-01-01T00:00:00+00:00" in text and "volume" in text


def test_each_evaluation_compares_only_the_new_windows(
    make_simulator: Callable[..., SimulatorServer], settings: Settings, mongo_db: Any
) -> None:
    sim = make_simulator(symbols=default_symbols()[:1], clock=SimClock.fixed(DAY0 + 86_400_000))
    _load(sim, mongo_db, tamper=False)
    assert _run(settings).metadata["windows_checked"].value == 2
    # Repair stores the third window's missing minute: only that window is compared now.
    missing = sim.market.minute("BTCUSDT", DAY0 + 40 * 60_000)
    assert missing is not None
    CandleStore(mongo_db, STREAMING_1M).upsert([missing])
    again = _run(settings)
    assert again.passed and again.metadata["windows_checked"].value == 1
    assert _run(settings).metadata["windows_checked"].value == 0


def test_a_window_that_differs_is_compared_again_until_it_agrees(
    make_simulator: Callable[..., SimulatorServer], settings: Settings, mongo_db: Any
) -> None:
    sim = make_simulator(symbols=default_symbols()[:1], clock=SimClock.fixed(DAY0 + 86_400_000))
    _load(sim, mongo_db, tamper=True)
    assert not _run(settings).passed
    assert not _run(settings).passed  # still reported, not skipped as "already seen"
    fixed = sim.market.minute("BTCUSDT", DAY0 + 3 * 60_000)
    assert fixed is not None
    mongo_db[STREAMING_1M].delete_one({"symbol": "BTCUSDT", "open_time": fixed.open_time})
    CandleStore(mongo_db, STREAMING_1M).upsert([fixed])
    assert _run(settings).passed


def test_the_reconciliation_runs_by_itself_every_hour(settings: Settings) -> None:
    from cryptobot_assets.stream.definitions import build_defs

    on = settings.model_copy(update={"stream_supervisor_autostart": True})
    schedule = build_defs(on).get_schedule_def("reconcile_schedule")
    assert schedule.cron_schedule == "20 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = build_defs(on).resolve_job_def("reconcile_job")
    assert job.asset_layer.asset_graph.asset_check_keys == {
        reconciles_with_historical_15m.check_key
    }
