"""klines_15m and candle_features_15m materialized in-process against SecantusDB + simulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg
import pytest
from pymongo.database import Database

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import FEATURES_KEY, KLINES_KEY
from cryptobot_assets.history.checks import history_checks
from cryptobot_assets.history.partitions import partition_key, range_tags
from cryptobot_core.intervals import Interval
from cryptobot_core.models import ms_to_dt
from cryptobot_core.services import free_port
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer
from cryptobot_core.store import (
    FEATURES_15M,
    HISTORICAL_15M,
    HISTORY_GAPS_15M,
    candle_from_document,
)
from tests.assets.history.conftest import START, TODAY, day_ms, point_at
from tests.fixtures.simulator import MakeSimulator

DAY1 = TODAY - timedelta(days=3)
DAY2 = TODAY - timedelta(days=2)


def run(defs: dg.Definitions, instance: Any, **kwargs: Any) -> dg.ExecuteInProcessResult:
    """Materialize klines_15m (+ its checks) in-process."""
    return dg.materialize(
        [defs.get_assets_def(KLINES_KEY), *history_checks],
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
        **kwargs,
    )


def snapshot(db: Database[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stored candle document, in key order."""
    return list(db[HISTORICAL_15M].find({}).sort([("symbol", 1), ("open_time", 1)]))


def test_a_partition_range_is_stored_exactly_and_a_rerun_changes_nothing(
    defs: dg.Definitions,
    instance: Any,
    mongo_db: Database[dict[str, Any]],
    real_sim: SimulatorServer,
) -> None:
    res = run(defs, instance, tags=range_tags("BTCUSDT", DAY1, DAY2))
    assert res.success
    mats = res.get_asset_materialization_events()
    assert sorted(m.materialization.partition for m in mats) == [
        str(partition_key("BTCUSDT", DAY1)),
        str(partition_key("BTCUSDT", DAY2)),
    ]
    meta = mats[0].materialization.metadata
    assert meta["candles_written"].value == 192 and meta["missing_candles"].value == 0
    assert meta["first_open_time"].value == ms_to_dt(day_ms(DAY1)).isoformat()
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks["completeness"] and checks["uniqueness"] and checks["ohlc_sanity"]
    # Exactly the exchange's candles, the still-open one never among them.
    stored = snapshot(mongo_db)
    want = real_sim.market.klines(
        "BTCUSDT", Interval.M15, day_ms(DAY1), day_ms(DAY2) + 86_400_000 - 1, 1000
    )
    assert [candle_from_document(d).to_rest_row() for d in stored] == [
        c.to_rest_row() for c in want
    ]
    # Closed days published as archive files come from them, every checksum verified.
    assert all(d["is_closed"] and d["source"] == "archive" for d in stored)
    assert meta["archive_files"].value >= 1 and meta["archive_fallbacks"].value == 0

    again = run(defs, instance, tags=range_tags("BTCUSDT", DAY1, DAY2))
    assert again.success
    assert (
        again.get_asset_materialization_events()[0]
        .materialization.metadata["candles_written"]
        .value
        == 0
    )
    assert snapshot(mongo_db) == stored


def test_an_outage_is_reported_as_a_gap_and_the_run_succeeds(
    settings: Settings,
    make_simulator: MakeSimulator,
    instance: Any,
    mongo_db: Database[dict[str, Any]],
) -> None:
    outage = (day_ms(DAY1) + 3_600_000, day_ms(DAY1) + 2 * 3_600_000, "ETHUSDT")
    sim = make_simulator(clock=SimClock.real(), outages=[outage])
    defs = build_defs(point_at(settings, sim))
    res = run(defs, instance, tags=range_tags("ETHUSDT", DAY1, DAY2))
    assert res.success
    by_part = {
        m.materialization.partition: m.materialization.metadata
        for m in res.get_asset_materialization_events()
    }
    meta = by_part[str(partition_key("ETHUSDT", DAY1))]
    assert meta["missing_candles"].value == 4
    missing = meta["missing"].value
    assert [m["open_time"] for m in missing] == [
        ms_to_dt(outage[0] + i * 900_000).isoformat() for i in range(4)
    ]
    assert {m["reason"] for m in missing} == {"exchange_outage"}
    completeness = next(
        c for c in res.get_asset_check_evaluations() if c.check_name == "completeness"
    )
    assert completeness.passed
    assert completeness.metadata["exchange_gaps"].value == 4
    assert mongo_db[HISTORICAL_15M].count_documents({"symbol": "ETHUSDT"}) == 192 - 4
    assert mongo_db[HISTORY_GAPS_15M].count_documents({"reason": "exchange_outage"}) == 4


def test_an_unknown_symbol_fails_the_run_clearly_and_writes_nothing(
    defs: dg.Definitions, instance: Any, mongo_db: Database[dict[str, Any]]
) -> None:
    instance.add_dynamic_partitions("symbols", ["NOPEUSDT"])
    res = run(defs, instance, partition_key=str(partition_key("NOPEUSDT", DAY1)))
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "klines_15m NOPEUSDT" in message and "Invalid symbol" in message
    assert mongo_db[HISTORICAL_15M].count_documents({}) == 0
    assert not instance.get_materialized_partitions(KLINES_KEY)


def test_a_store_that_is_down_fails_the_run_with_a_clear_message(
    hist_settings: Settings, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    down_uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    monkeypatch.setenv("CRYPTOBOT_MONGO_URI", down_uri)
    down = hist_settings.model_copy(update={"mongo_uri": down_uri, "mongo_timeout_ms": 300})
    res = run(build_defs(down), instance, partition_key=str(partition_key("BTCUSDT", DAY1)))
    assert not res.success
    text = " ".join(
        str(e.message)
        for e in res.all_events
        if e.is_failure or e.event_type_value == "STEP_FAILURE"
    )
    errors = [
        e for e in res.all_events if e.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE")
    ]
    assert errors, text
    assert any("document store unreachable" in str(e.event_specific_data) for e in errors)
    assert not instance.get_materialized_partitions(KLINES_KEY)


def test_today_is_not_a_partition(defs: dg.Definitions, instance: Any) -> None:
    pdef = defs.get_assets_def(KLINES_KEY).partitions_def
    assert pdef is not None
    keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
    days = {k.split("|")[0] for k in keys}
    assert (TODAY - timedelta(days=1)).isoformat() in days
    assert TODAY.isoformat() not in days
    assert min(days) == START.isoformat()


def test_features_read_the_range_plus_the_previous_day(
    defs: dg.Definitions, instance: Any, mongo_db: Database[dict[str, Any]]
) -> None:
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert run(defs, instance, tags=range_tags(symbol, DAY1, DAY2)).success
    res = dg.materialize(
        [defs.get_assets_def(FEATURES_KEY), defs.get_assets_def(KLINES_KEY)],
        selection=[FEATURES_KEY],
        instance=instance,
        resources=defs.resources,
        partition_key=DAY2.isoformat(),
    )
    assert res.success
    meta = res.get_asset_materialization_events()[0].materialization.metadata
    assert meta["candles_read"].value == 2 * 192  # the day and its look-back day, both symbols
    assert meta["dagster/row_count"].value == 2 * 96
    docs = list(mongo_db[FEATURES_15M].find({}, {"_id": 0}).sort([("symbol", 1), ("open_time", 1)]))
    assert len(docs) == 192
    assert {d["open_time"].date() for d in docs} == {DAY2}
    # The first candle of the day has a full 24h window thanks to the previous day.
    first = docs[0]
    assert first["log_return"] is not None and first["volatility_24h"] is not None
    assert set(first) >= {
        "symbol",
        "open_time",
        "close_time",
        "close",
        "log_return",
        "volatility_1h",
        "volatility_24h",
        "vwap",
        "hl_range",
        "volume_zscore",
        "computed_at",
    }


@pytest.mark.parametrize("symbol", ["BTCUSDT"])
def test_the_daily_partition_key_materializes_one_day(
    defs: dg.Definitions, instance: Any, mongo_db: Database[dict[str, Any]], symbol: str
) -> None:
    res = run(defs, instance, partition_key=str(partition_key(symbol, DAY2)))
    assert res.success
    assert mongo_db[HISTORICAL_15M].count_documents({"symbol": symbol}) == 96
