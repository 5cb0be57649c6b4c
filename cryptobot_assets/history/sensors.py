"""Sensors: keep the symbol partitions in sync with settings; catch up missing days."""

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from cryptobot_assets.history.assets import FEATURES_KEY, KLINES_KEY, klines_key, klines_keys
from cryptobot_assets.history.partitions import (
    SYMBOLS_PARTITIONS_NAME,
    partition_key,
    range_tags,
    symbols_partitions,
)
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.runs import ACTIVE_RUN_STATUSES
from cryptobot_core.errors import CryptobotError
from cryptobot_core.history import (
    klines_asset_name,
    max_days_per_run,
    missing_partitions,
    plan_runs,
)
from cryptobot_core.intervals import Interval
from cryptobot_core.universe import configured_symbols, current_symbols, refresh_daily

CATCH_UP_TAG = "cryptobot/catch_up"


@dg.sensor(
    name="symbols_sensor",
    # Cheap when nothing changed (no exchange call); a new symbol shows up within a minute.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds configured symbols (validated on exchangeInfo) as partitions; removes "
    "unconfigured ones that hold no data (an ad-hoc backfill's symbol stays).",
)
def symbols_sensor(
    context: dg.SensorEvaluationContext,
    config: CryptobotSettingsResource,
) -> dg.SensorResult | dg.SkipReason:
    """Sync the ``symbols`` dynamic partitions with CRYPTOBOT_SYMBOLS; unknown ones are rejected."""
    try:
        settings = config.settings()
        if settings.symbol_rule is None:
            wanted = settings.symbol_list
        else:
            # A rule (top:50:USDT) is resolved again once per UTC day; every process reads
            # the resolution from the store, so they all work on the same set.
            with config.open_store() as store, config.exchange_client() as client:
                change = refresh_daily(settings, store, client)
                wanted = configured_symbols(settings, store, client)
            if change is not None:
                joined, left = change
                context.log.info(
                    f"universe {settings.symbol_rule} resolved: {len(wanted)} symbols; "
                    f"joined: {', '.join(joined) or 'none'}; left (history kept, no longer "
                    f"growing): {', '.join(left) or 'none'}"
                )
    except CryptobotError as exc:
        return dg.SkipReason(f"symbols not synced: {exc}")
    current = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
    to_add = [s for s in wanted if s not in current]
    # A symbol outside the settings stays when it has data: someone backfilled it on purpose
    # (`cryptobot backfill --symbols X`). Only leftovers without any materialization go.
    with_data = {
        part
        for asset in klines_keys(settings)
        for key in context.instance.get_materialized_partitions(asset)
        for part in str(key).split("|")
    }
    to_remove = sorted(s for s in current - set(wanted) if s not in with_data)
    valid: list[str] = []
    if to_add:
        try:
            with config.exchange_client() as client:
                valid, bad = client.check_symbols(to_add)
        except CryptobotError as exc:
            # Not a crash: the exchange may be down; the next tick tries again.
            context.log.error(f"cannot validate symbols {to_add} on the exchange: {exc}")
            return dg.SkipReason(f"exchange unavailable, symbols not synced: {exc}")
        for symbol, reason in sorted(bad.items()):
            context.log.error(
                f"symbol {symbol} rejected: {reason}. It is not added to the history "
                f"partitions; fix CRYPTOBOT_SYMBOLS (symbols must be listed and TRADING on the "
                f"exchange). The other symbols are not affected."
            )
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if valid:
        context.log.info(f"adding symbol partitions: {', '.join(valid)}")
        requests.append(symbols_partitions.build_add_request(valid))
    if to_remove:
        context.log.info(f"removing symbol partitions no longer configured: {', '.join(to_remove)}")
        requests.append(symbols_partitions.build_delete_request(to_remove))
    if not requests:
        return dg.SkipReason("symbol partitions already match the configured symbols")
    return dg.SensorResult(dynamic_partitions_requests=requests)


def build_catch_up_sensor(intervals: list[Interval] | None = None) -> dg.SensorDefinition:
    """``history_catch_up_sensor`` over the klines assets of ``intervals`` (default 15m)."""
    keys = {klines_key(i): i for i in intervals} if intervals else {KLINES_KEY: Interval.M15}

    @dg.sensor(
        name="history_catch_up_sensor",
        target=dg.AssetSelection.assets(*keys),
        # Every minute, so a fresh start catches up as soon as symbols_sensor has added the
        # symbols; the day-stamped run keys keep one missing range from being asked twice a
        # day.
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests every missing partition of every klines asset from the start "
        "date to yesterday.",
    )
    def history_catch_up_sensor(
        context: dg.SensorEvaluationContext, config: CryptobotSettingsResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        """Catch up since the last successful extraction: per interval, one run per 30 missing
        days per symbol (fewer for fine intervals), the newest ranges first.

        Run keys name the day of the request, so a missing range is asked for at most once a
        day; a failed run is retried the next day or from the UI.
        """
        settings = config.settings()
        start = settings.start_date
        today = datetime.now(UTC).date()
        yesterday = today - timedelta(days=1)
        # Only configured symbols are caught up; an ad-hoc symbol keeps what was backfilled.
        if settings.symbol_rule is None:
            configured = set(settings.symbol_list)
        else:
            with config.open_store() as store:
                configured = set(current_symbols(settings, store))
        symbols = sorted(
            s
            for s in context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME)
            if s in configured
        )
        if not symbols:
            return dg.SkipReason("no symbol partitions yet (symbols_sensor adds them)")
        if start > yesterday:
            return dg.SkipReason(f"start date {start} is after yesterday: nothing to catch up")
        active = context.instance.get_runs(
            filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={CATCH_UP_TAG: "true"}),
            limit=1,
        )
        if active:
            return dg.SkipReason("catch-up runs are still queued or running")
        ranges: list[tuple[date, date, str, Interval]] = []
        missing_count = 0
        for key, interval in keys.items():
            done = context.instance.get_materialized_partitions(key)
            missing = missing_partitions(symbols, start, yesterday, _materialized_in(done))
            missing_count += len(missing)
            ranges += [
                (first, last, symbol, interval)
                for symbol, first, last in plan_runs(missing, max_days_per_run(interval))
            ]
        if not ranges:
            return dg.SkipReason(f"every partition from {start} to {yesterday} is materialized")
        # Newest first: runs start in the order requested, so a newcomer's first chart shows
        # this week, not the start date; the default interval first within a day.
        ranges.sort(key=lambda r: (-r[1].toordinal(), r[3] is not Interval.M15, r[2], r[3].ms))
        requests = [
            dg.RunRequest(
                run_key=_run_key(today, interval, symbol, first, last),
                asset_selection=[klines_key(interval)],
                tags={**range_tags(symbol, first, last), CATCH_UP_TAG: "true"},
            )
            for first, last, symbol, interval in ranges
        ]
        context.log.info(f"catch-up: {missing_count} missing partitions in {len(requests)} runs")
        return requests

    return history_catch_up_sensor


def _materialized_in(done: AbstractSet[str]) -> Callable[[str, date], bool]:
    """Whether (symbol, day) is among the materialized partition keys ``done``."""
    return lambda symbol, day: str(partition_key(symbol, day)) in done


def _run_key(today: date, interval: Interval, symbol: str, first: date, last: date) -> str:
    # The 15m key keeps its original form, so an upgrade does not ask for a range twice.
    asset = "" if interval is Interval.M15 else f"{klines_asset_name(interval)}:"
    return f"catch-up:{today.isoformat()}:{asset}{symbol}:{first}:{last}"


history_catch_up_sensor = build_catch_up_sensor()


# Features follow the candles: this evaluates candle_features_15m's automation condition.
# Dagster's default automation sensor starts stopped; this one starts running.
features_automation_sensor = dg.AutomationConditionSensorDefinition(
    "features_automation_sensor",
    target=dg.AssetSelection.assets(FEATURES_KEY),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Every minute, like the catch-up it follows: a newcomer's first features (and
    # `cryptobot check`) come about a minute after the candles instead of up to five. The
    # condition is cheap to evaluate; a run (one Spark start) happens only when candles
    # changed, and the partitions that changed within a minute share it.
    minimum_interval_seconds=60,
    description="Recomputes candle_features_15m for days whose candles changed.",
)
