"""The daily schedule, the symbols sensor and the catch-up sensor, evaluated for real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from cryptobot_assets.history.assets import KLINES_KEY
from cryptobot_assets.history.partitions import RANGE_END_TAG, RANGE_START_TAG, partition_key
from cryptobot_assets.history.schedules import daily_history_update
from cryptobot_assets.history.sensors import CATCH_UP_TAG, history_catch_up_sensor, symbols_sensor
from cryptobot_core.simulator import SimulatorServer
from tests.assets.history.conftest import START, TODAY
from tests.core.test_universe import expected_top


def evaluate(sensor: dg.SensorDefinition, instance: Any, defs: dg.Definitions) -> Any:
    """Evaluate ``sensor`` once with the resource sensors use (the one settings resource)."""
    resources = {"config": defs.resources["config"]}
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        return sensor(ctx)


def test_daily_schedule_requests_yesterday_for_every_symbol(instance: Any) -> None:
    tick = datetime(2026, 3, 2, 0, 15, tzinfo=UTC)
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    requests = daily_history_update(ctx)
    assert isinstance(requests, list)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-03-01|BTCUSDT", "daily:2026-03-01:BTCUSDT"),
        ("2026-03-01|ETHUSDT", "daily:2026-03-01:ETHUSDT"),
    ]
    assert daily_history_update.cron_schedule == "15 0 * * *"
    assert daily_history_update.execution_timezone == "UTC"


def test_daily_schedule_skips_without_symbols(empty_instance: Any) -> None:
    inst = empty_instance
    ctx = dg.build_schedule_context(
        instance=inst, scheduled_execution_time=datetime(2026, 3, 2, 0, 15, tzinfo=UTC)
    )
    result = daily_history_update(ctx)
    assert isinstance(result, dg.SkipReason) and "no symbols" in str(result.skip_message)


def test_symbols_sensor_adds_valid_removes_unconfigured_and_rejects_unknown(
    defs: dg.Definitions,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    empty_instance: Any,
) -> None:
    monkeypatch.setenv("CRYPTOBOT_SYMBOLS", "BTCUSDT,NOPEUSDT,ETHUSDT,LUNAUSDT")
    inst = empty_instance
    inst.add_dynamic_partitions("symbols", ["XRPUSDT", "BTCUSDT"])
    result = evaluate(symbols_sensor, inst, defs)
    assert isinstance(result, dg.SensorResult)
    adds = [
        r
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.AddDynamicPartitionsRequest)
    ]
    dels = [
        r
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert [list(r.partition_keys) for r in adds] == [["ETHUSDT"]]
    assert [list(r.partition_keys) for r in dels] == [["XRPUSDT"]]
    text = capfd.readouterr().err  # the sensor's log, as the daemon would show it
    assert "symbol NOPEUSDT rejected" in text and "symbol LUNAUSDT rejected" in text
    assert "The other symbols are not affected" in text


def test_symbols_sensor_turns_a_rule_into_partitions_and_keeps_leavers_with_data(
    defs: dg.Definitions,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    empty_instance: Any,
    real_sim: SimulatorServer,
    mongo_db: Any,
) -> None:
    monkeypatch.setenv("CRYPTOBOT_SYMBOLS", "top:5:USDT")
    inst = empty_instance
    want = expected_top(real_sim.url, 5, "USDT")
    # A symbol that left the universe, with history: it stays. One without data goes.
    leaver = next(s for s in ("XRPUSDT", "LTCUSDT", "TRXUSDT") if s not in want)
    gone = next(s for s in ("ADAUSDT", "XLMUSDT", "UNIUSDT") if s not in want)
    inst.add_dynamic_partitions("symbols", [leaver, gone])
    inst.report_runless_asset_event(
        dg.AssetMaterialization(KLINES_KEY, partition=str(partition_key(leaver, START)))
    )
    result = evaluate(symbols_sensor, inst, defs)
    assert isinstance(result, dg.SensorResult)
    requests = result.dynamic_partitions_requests or []
    adds = [
        k
        for r in requests
        if isinstance(r, dg.AddDynamicPartitionsRequest)
        for k in r.partition_keys
    ]
    dels = [
        k
        for r in requests
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
        for k in r.partition_keys
    ]
    assert sorted(adds) == sorted(want) and dels == [gone]
    # The resolution is kept where every process reads it.
    assert mongo_db["symbol_universe"].find_one({"_id": "top:5:USDT"})["symbols"] == want
    assert "universe top:5:USDT resolved: 5 symbols" in capfd.readouterr().err


def test_symbols_sensor_skips_when_in_sync(
    defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch, empty_instance: Any
) -> None:
    monkeypatch.setenv("CRYPTOBOT_SYMBOLS", "BTCUSDT,ETHUSDT")
    inst = empty_instance
    inst.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
    result = evaluate(symbols_sensor, inst, defs)
    assert isinstance(result, dg.SkipReason)


def test_catch_up_requests_missing_ranges_with_deterministic_run_keys(
    defs: dg.Definitions, instance: Any
) -> None:
    yesterday = TODAY - timedelta(days=1)
    done = [START + timedelta(days=i) for i in (0, 1, 4)]
    for day in done:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(KLINES_KEY, partition=str(partition_key("BTCUSDT", day)))
        )
    requests = evaluate(history_catch_up_sensor, instance, defs)
    assert isinstance(requests, list)
    spans = [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests]
    # Newest ranges first, so the first runs bring this week's candles.
    assert spans == [
        (
            str(partition_key("BTCUSDT", START + timedelta(days=5))),
            str(partition_key("BTCUSDT", yesterday)),
        ),
        (str(partition_key("ETHUSDT", START)), str(partition_key("ETHUSDT", yesterday))),
        (
            str(partition_key("BTCUSDT", START + timedelta(days=2))),
            str(partition_key("BTCUSDT", START + timedelta(days=3))),
        ),
    ]
    assert all(
        r.tags[CATCH_UP_TAG] == "true" and r.asset_selection == [KLINES_KEY] for r in requests
    )
    again = evaluate(history_catch_up_sensor, instance, defs)
    assert isinstance(again, list)
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    assert requests[-1].run_key == (
        f"catch-up:{TODAY}:BTCUSDT:{START + timedelta(days=2)}:{START + timedelta(days=3)}"
    )


def test_catch_up_run_request_executes_as_one_ranged_run(
    defs: dg.Definitions, instance: Any
) -> None:
    requests = evaluate(history_catch_up_sensor, instance, defs)
    assert isinstance(requests, list)
    eth = next(r for r in requests if "ETHUSDT" in r.tags[RANGE_START_TAG])
    res = dg.materialize(
        [defs.get_assets_def(KLINES_KEY)],
        instance=instance,
        resources=defs.resources,
        tags=dict(eth.tags),
    )
    assert res.success
    assert len(res.get_asset_materialization_events()) == (TODAY - START).days
    rest = evaluate(history_catch_up_sensor, instance, defs)
    assert isinstance(rest, list)
    assert all("ETHUSDT" not in r.tags[RANGE_START_TAG] for r in rest)


def test_catch_up_skips_when_everything_is_materialized(
    defs: dg.Definitions, empty_instance: Any
) -> None:
    inst = empty_instance
    inst.add_dynamic_partitions("symbols", ["BTCUSDT"])
    day = START
    while day < TODAY:
        inst.report_runless_asset_event(
            dg.AssetMaterialization(KLINES_KEY, partition=str(partition_key("BTCUSDT", day)))
        )
        day += timedelta(days=1)
    result = evaluate(history_catch_up_sensor, inst, defs)
    assert isinstance(result, dg.SkipReason) and "every partition" in str(result.skip_message)


def test_an_ad_hoc_symbol_with_data_stays_and_is_not_caught_up(
    defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch, empty_instance: Any
) -> None:
    monkeypatch.setenv("CRYPTOBOT_SYMBOLS", "BTCUSDT")
    inst = empty_instance
    inst.add_dynamic_partitions("symbols", ["BTCUSDT", "SOLUSDT", "XRPUSDT"])
    # `cryptobot backfill --symbols SOLUSDT` materialized a day of it; XRPUSDT has nothing.
    inst.report_runless_asset_event(
        dg.AssetMaterialization(KLINES_KEY, partition=str(partition_key("SOLUSDT", START)))
    )
    result = evaluate(symbols_sensor, inst, defs)
    assert isinstance(result, dg.SensorResult)
    dels = [
        list(r.partition_keys)
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert dels == [["XRPUSDT"]]
    requests = evaluate(history_catch_up_sensor, inst, defs)
    assert isinstance(requests, list) and requests
    assert {r.tags[RANGE_START_TAG].split("|")[-1] for r in requests} == {"BTCUSDT"}
