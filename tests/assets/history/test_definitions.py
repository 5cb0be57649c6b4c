"""The code location loads, and the history wiring is what the design says."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import EXCHANGE_POOL, FEATURES_KEY, KLINES_KEY
from cryptobot_assets.history.partitions import (
    keys_of_run,
    partition_key,
    range_tags,
    split_key,
)
from cryptobot_core.settings import Settings


def test_whole_code_location_loads(settings: Settings) -> None:
    defs = build_defs(settings)
    repo = defs.get_repository_def()
    keys = {n.key for n in repo.asset_graph.asset_nodes}
    assert {KLINES_KEY, FEATURES_KEY} <= keys
    assert {"symbols_sensor", "history_catch_up_sensor"} <= {s.name for s in repo.sensor_defs}
    assert "daily_history_update" in {s.name for s in repo.schedule_defs}
    checks = {k.name for k in repo.asset_graph.asset_check_keys if k.asset_key == KLINES_KEY}
    assert checks == {"completeness", "uniqueness", "ohlc_sanity", "freshness"}
    # Every job (including the implicit asset job) resolves its resources.
    for job in repo.get_all_jobs():
        assert job.name


def test_klines_asset_policy_pool_and_partitions(settings: Settings) -> None:
    pinned = settings.model_copy(update={"history_start_date": date(2025, 1, 1)})
    repo = build_defs(pinned).get_repository_def()
    klines = repo.asset_graph.get(KLINES_KEY)
    assert klines.pools == {EXCHANGE_POOL}
    policy = klines.backfill_policy
    assert policy is not None and policy.max_partitions_per_run == 30
    pdef = klines.partitions_def
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    assert {d.name for d in pdef.partitions_defs} == {"date", "symbol"}
    features = repo.asset_graph.get(FEATURES_KEY)
    assert (
        features.backfill_policy is not None
        and features.backfill_policy.max_partitions_per_run is None
    )
    daily = features.partitions_def
    assert isinstance(daily, dg.DailyPartitionsDefinition)
    assert daily.start.date() == date(2025, 1, 1)


def test_partition_keys_round_trip_and_run_scopes() -> None:
    key = partition_key("BTCUSDT", date(2025, 3, 1))
    assert str(key) == "2025-03-01|BTCUSDT"
    assert split_key(key) == ("BTCUSDT", date(2025, 3, 1))
    assert split_key("2025-03-01|ETHUSDT") == ("ETHUSDT", date(2025, 3, 1))
    with pytest.raises(ValueError, match="not a \\(date, symbol\\) partition key"):
        split_key("BTCUSDT")
    tags = range_tags("ETHUSDT", date(2025, 2, 27), date(2025, 3, 2))
    assert keys_of_run(tags) == [("ETHUSDT", date(2025, 2, d)) for d in (27, 28)] + [
        ("ETHUSDT", date(2025, 3, d)) for d in (1, 2)
    ]
    assert keys_of_run({"dagster/partition": "2025-03-01|BTCUSDT"}) == [
        ("BTCUSDT", date(2025, 3, 1))
    ]
    assert keys_of_run({}) == []
