"""Data-quality checks on every klines asset: completeness, uniqueness, OHLC sanity, freshness.

Run in the same run as a materialization, a check covers that run's partitions; run on its
own (from the UI), it covers every materialized partition.
"""

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg

from cryptobot_assets.history.assets import klines_key
from cryptobot_assets.history.partitions import SYMBOLS_PARTITIONS_NAME, keys_of_run, split_keys
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_core.errors import CryptobotError
from cryptobot_core.history import (
    INTERVAL,
    CheckOutcome,
    check_completeness,
    check_freshness,
    check_ohlc,
    check_uniqueness,
)
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import Settings
from cryptobot_core.store import Store


def check_scope(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> list[tuple[str, date]]:
    """The (symbol, day) partitions of asset ``key`` this check run should look at."""
    in_run = keys_of_run(dict(context.run.tags))
    if in_run:
        return in_run
    return split_keys(context.instance.get_materialized_partitions(key))


def _result(outcome: CheckOutcome, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"summary": outcome.summary}
    for key, value in outcome.details.items():
        metadata[key] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        metadata=metadata,
        description=outcome.summary,
    )


def _run(
    config: CryptobotSettingsResource,
    fn: Callable[[Store], CheckOutcome],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    try:
        with config.open_store() as store:
            return _result(fn(store), severity)
    except CryptobotError as exc:
        raise dg.Failure(description=str(exc)) from None


def _scoped_check(
    key: dg.AssetKey,
    name: str,
    description: str,
    check: Callable[[Store, list[tuple[str, date]]], CheckOutcome],
) -> dg.AssetChecksDefinition:
    """A check over the partitions of the run it is in (or every materialized one)."""

    @dg.asset_check(asset=key, name=name, blocking=False, description=description)
    def scoped(
        context: dg.AssetCheckExecutionContext, config: CryptobotSettingsResource
    ) -> dg.AssetCheckResult:
        scope = check_scope(context, key)
        return _run(config, lambda store: check(store, scope))

    return scoped


def build_history_checks(interval: Interval = INTERVAL) -> list[dg.AssetChecksDefinition]:
    """The four checks of ``klines_<interval>``."""
    key = klines_key(interval)
    iv = interval.value

    scoped = [
        _scoped_check(
            key,
            "completeness",
            f"Every expected {iv} candle is stored, or recorded as an exchange-side gap with "
            "its reason.",
            lambda store, scope: check_completeness(store, scope, interval),
        ),
        _scoped_check(
            key,
            "uniqueness",
            "No (symbol, open_time) is stored twice.",
            lambda store, scope: check_uniqueness(store, scope, interval),
        ),
        _scoped_check(
            key,
            "ohlc_sanity",
            f"low <= open, close <= high; volumes >= 0; close_time = open_time + {iv} - 1 ms.",
            lambda store, scope: check_ohlc(store, scope, interval),
        ),
    ]

    @dg.asset_check(
        asset=key,
        name="freshness",
        description="Yesterday (UTC), the latest closed day, is loaded for every symbol.",
    )
    def freshness(
        context: dg.AssetCheckExecutionContext, config: CryptobotSettingsResource
    ) -> dg.AssetCheckResult:
        symbols = context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME)
        now_ms = int(time.time() * 1000)
        # A warning, not an error: between 00:00 and the 00:15 daily update it is expected.
        return _run(
            config,
            lambda store: check_freshness(store, symbols, now_ms, interval),
            dg.AssetCheckSeverity.WARN,
        )

    return [*scoped, freshness]


def history_checks_for(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The checks of every configured history interval."""
    return [check for i in settings.history_intervals for check in build_history_checks(i)]


history_checks = build_history_checks(INTERVAL)
