"""History at intervals other than 15m: one asset each, same partitions, checks and catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
from pymongo.database import Database

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import KLINES_KEY, klines_key
from cryptobot_assets.history.checks import build_history_checks
from cryptobot_assets.history.partitions import RANGE_START_TAG, partition_key, range_tags
from cryptobot_assets.history.sensors import build_catch_up_sensor
from cryptobot_core.history import max_days_per_run
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer
from cryptobot_core.store import HISTORICAL_15M, candle_from_document, history_collection
from tests.assets.history.conftest import START, TODAY, day_ms, point_at
from tests.assets.history.test_automation import evaluate
from tests.fixtures.simulator import MakeSimulator

DAY1 = TODAY - timedelta(days=3)
DAY2 = TODAY - timedelta(days=2)
H1 = klines_key(Interval.H1)


@pytest.fixture
def defs_1h(hist_settings: Settings) -> dg.Definitions:
    """The code location keeping 15m and 1h history."""
    return build_defs(
        hist_settings.model_copy(update={"history_intervals": [Interval.M15, Interval.H1]})
    )


def _materialize(
    defs: dg.Definitions, instance: Any, interval: Interval, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [defs.get_assets_def(klines_key(interval)), *build_history_checks(interval)],
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
        **kwargs,
    )


def _stored(db: Database[dict[str, Any]], interval: Interval) -> list[dict[str, Any]]:
    coll = db[history_collection(interval)]
    return list(coll.find({}).sort([("symbol", 1), ("open_time", 1)]))


def _exchange(sim: SimulatorServer, symbol: str, interval: Interval, lo: int, hi: int) -> list[Any]:
    """Every candle the simulator's REST answer has in [lo, hi), paged like a client."""
    out: list[Any] = []
    while lo < hi:
        page = sim.market.klines(symbol, interval, lo, hi - 1, 1000)
        if not page:
            break
        out += page
        lo = page[-1].open_ms + interval.ms
    return out


@pytest.mark.parametrize("interval", [Interval.H1, Interval.M1])
def test_history_at_another_interval_is_the_exchanges_exactly_in_its_own_collection(
    settings: Settings,
    make_simulator: MakeSimulator,
    instance: Any,
    mongo_db: Database[dict[str, Any]],
    interval: Interval,
) -> None:
    sim: SimulatorServer = make_simulator(clock=SimClock.real())
    defs = build_defs(
        point_at(
            settings, sim, history_intervals=sorted({Interval.M15, interval}, key=lambda i: i.ms)
        )
    )
    res = _materialize(defs, instance, interval, tags=range_tags("ETHUSDT", DAY1, DAY2))
    assert res.success
    mats = res.get_asset_materialization_events()
    assert {m.asset_key for m in mats} == {klines_key(interval)}
    per_day = 86_400_000 // interval.ms
    meta = mats[0].materialization.metadata
    assert meta["collection"].value == history_collection(interval)
    assert meta["interval"].value == interval.value
    assert meta["expected_candles"].value == 2 * per_day
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert checks["completeness"].passed and checks["uniqueness"].passed
    assert checks["ohlc_sanity"].passed
    assert checks["completeness"].metadata["expected"].value == 2 * per_day
    # Every candle the exchange has for the two days, exactly, and nothing in 15m.
    stored = _stored(mongo_db, interval)
    want = _exchange(sim, "ETHUSDT", interval, day_ms(DAY1), day_ms(DAY2) + 86_400_000)
    assert len(want) == 2 * per_day
    assert [candle_from_document(d).to_rest_row() for d in stored] == [
        c.to_rest_row() for c in want
    ]
    assert mongo_db[HISTORICAL_15M].count_documents({}) == 0
    again = _materialize(defs, instance, interval, tags=range_tags("ETHUSDT", DAY1, DAY2))
    assert again.success
    assert _stored(mongo_db, interval) == stored


def test_an_outage_is_a_recorded_gap_at_that_interval(
    settings: Settings,
    make_simulator: MakeSimulator,
    instance: Any,
    mongo_db: Database[dict[str, Any]],
) -> None:
    outage = (day_ms(DAY1) + 3_600_000, day_ms(DAY1) + 3 * 3_600_000, "ETHUSDT")
    sim = make_simulator(clock=SimClock.real(), outages=[outage])
    defs = build_defs(point_at(settings, sim, history_intervals=[Interval.M15, Interval.H1]))
    res = _materialize(
        defs, instance, Interval.H1, partition_key=str(partition_key("ETHUSDT", DAY1))
    )
    assert res.success
    meta = res.get_asset_materialization_events()[0].materialization.metadata
    assert [m["open_time"] for m in meta["missing"].value] == [
        datetime.fromtimestamp((outage[0] + i * 3_600_000) / 1000, UTC).isoformat()
        for i in range(2)
    ]
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert checks["completeness"].passed
    assert checks["completeness"].metadata["exchange_gaps"].value == 2
    want = [c.open_ms for c in _exchange(sim, "ETHUSDT", Interval.H1, day_ms(DAY1), day_ms(DAY2))]
    got = [int(d["open_time"].timestamp() * 1000) for d in _stored(mongo_db, Interval.H1)]
    assert got == want and len(got) == 22


def test_catch_up_and_the_daily_schedule_cover_every_interval(
    defs_1h: dg.Definitions, instance: Any
) -> None:
    for i in range((TODAY - START).days):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                KLINES_KEY, partition=str(partition_key("BTCUSDT", START + timedelta(days=i)))
            )
        )
    sensor = build_catch_up_sensor([Interval.M15, Interval.H1])
    requests = evaluate(sensor, instance, defs_1h)
    assert isinstance(requests, list)
    by_asset = sorted(
        (r.asset_selection[0].to_user_string(), r.tags[RANGE_START_TAG]) for r in requests
    )
    # 15m misses ETHUSDT only; 1h misses both symbols, each range one run.
    assert by_asset == [
        ("klines_15m", str(partition_key("ETHUSDT", START))),
        ("klines_1h", str(partition_key("BTCUSDT", START))),
        ("klines_1h", str(partition_key("ETHUSDT", START))),
    ]
    assert len({r.run_key for r in requests}) == 3
    assert any(r.run_key.startswith(f"catch-up:{TODAY}:klines_1h:") for r in requests)
    # One daily run per symbol loads yesterday at every interval.
    repo = defs_1h.get_repository_def()
    job = repo.get_job(repo.get_schedule_def("daily_history_update").job_name)
    assert job.asset_layer.executable_asset_keys == {KLINES_KEY, H1}


def test_fine_intervals_take_fewer_days_per_run() -> None:
    assert max_days_per_run(Interval.M15) == 30
    assert max_days_per_run(Interval.M1) == 30
    assert max_days_per_run(Interval.S1) == 1
    assert max_days_per_run(Interval.D1) == 30


def test_history_intervals_setting_refuses_what_cannot_be_partitioned_by_day() -> None:
    assert Settings(history_intervals="1h,15m,1h").history_intervals == [Interval.M15, Interval.H1]
    with pytest.raises(ValueError, match="1w cannot be kept as history.*allowed: 1s, 1m"):
        Settings(history_intervals="15m,1w")
    with pytest.raises(ValueError, match="must include 15m"):
        Settings(history_intervals="1h")
    with pytest.raises(ValueError, match="invalid interval '7m'"):
        Settings(history_intervals="15m,7m")
