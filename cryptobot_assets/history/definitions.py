"""History definitions: candles and features assets, checks, the daily schedule, sensors."""

from __future__ import annotations

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from cryptobot_assets.history.assets import (
    build_features_asset,
    build_klines_asset,
    klines_keys,
)
from cryptobot_assets.history.checks import history_checks_for
from cryptobot_assets.history.io_manager import MongoIOManager
from cryptobot_assets.history.schedules import build_daily_schedule
from cryptobot_assets.history.sensors import (
    build_catch_up_sensor,
    features_automation_sensor,
    symbols_sensor,
)
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_core.features import spark_config
from cryptobot_core.settings import Settings


def build_defs(
    settings: Settings, config: CryptobotSettingsResource | None = None
) -> dg.Definitions:
    """The history assets, checks, jobs, schedules and sensors (``config``: the shared resource)."""
    config = config or CryptobotSettingsResource.from_settings(settings)
    return dg.Definitions(
        assets=[
            *(build_klines_asset(settings, i) for i in settings.history_intervals),
            build_features_asset(settings),
        ],
        asset_checks=history_checks_for(settings),
        schedules=[build_daily_schedule(klines_keys(settings))],
        sensors=[
            symbols_sensor,
            build_catch_up_sensor(settings.history_intervals),
            features_automation_sensor,
        ],
        resources={
            "config": config,
            "mongo_io_manager": MongoIOManager(config=config),
            # Lazy: the session (and the Java check) happens only when the features run.
            "pyspark": LazyPySparkResource(spark_config=spark_config(settings.spark_master)),
        },
        # Runs are one I/O-bound step plus cheap checks: one process per run, not one per
        # step, keeps a 12-run backfill from spawning 60 Python processes.
        executor=dg.in_process_executor,
    )
