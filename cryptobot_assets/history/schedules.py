"""The daily update: at 00:15 UTC, materialize yesterday's partition of every symbol."""

from datetime import timedelta

import dagster as dg

from cryptobot_assets.history.assets import KLINES_KEY
from cryptobot_assets.history.partitions import SYMBOLS_PARTITIONS_NAME, partition_key

DAILY_CRON = "15 0 * * *"


def build_daily_schedule(keys: list[dg.AssetKey] | None = None) -> dg.ScheduleDefinition:
    """The ``daily_history_update`` schedule over the klines assets ``keys`` (all intervals).

    Every klines asset has the same (date, symbol) partitions, so one run per symbol loads
    yesterday at every configured interval.
    """
    keys = keys or [KLINES_KEY]

    @dg.schedule(
        name="daily_history_update",
        cron_schedule=DAILY_CRON,
        execution_timezone="UTC",
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 00:15 UTC, load yesterday's candles of every symbol at every history "
        "interval (one run per symbol).",
    )
    def daily_history_update(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        """One run per symbol for the day that ended before this tick."""
        tick = context.scheduled_execution_time
        day = (tick - timedelta(days=1)).date()
        symbols = sorted(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
        if not symbols:
            return dg.SkipReason(
                "no symbols yet: symbols_sensor adds the configured CRYPTOBOT_SYMBOLS once "
                "validated"
            )
        return [
            dg.RunRequest(
                run_key=f"daily:{day.isoformat()}:{symbol}",
                partition_key=partition_key(symbol, day),
                tags={"cryptobot/trigger": "daily_history_update"},
            )
            for symbol in symbols
        ]

    return daily_history_update


daily_history_update = build_daily_schedule()
