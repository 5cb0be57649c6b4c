"""Stream definitions: the external streaming asset, its check, jobs, sensor and schedule."""

from __future__ import annotations

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.assets import streaming_data_1m
from cryptobot_assets.stream.checks import reconciles_with_historical_15m
from cryptobot_assets.stream.jobs import stream_consumer_job, stream_producer_job, stream_repair_job
from cryptobot_assets.stream.sensors import build_supervisor
from cryptobot_core.settings import Settings


def _with_the_stream(settings: Settings) -> dg.DefaultScheduleStatus:
    """Stream schedules run whenever the stream itself is supervised (see stream_supervisor)."""
    return (
        dg.DefaultScheduleStatus.RUNNING
        if settings.stream_supervisor_autostart
        else dg.DefaultScheduleStatus.STOPPED
    )


def build_repair_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The day sweep of repair: it also catches gaps nobody recorded (e.g. a killed producer)."""
    return dg.ScheduleDefinition(
        name="stream_repair_schedule",
        job=stream_repair_job,
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        default_status=_with_the_stream(settings),
        description="Every 15 minutes: fill missing closed minutes of today from REST.",
    )


reconcile_job = dg.define_asset_job(
    "reconcile_job",
    selection=dg.AssetSelection.checks(reconciles_with_historical_15m),
    description="Evaluate the 1m-vs-15m reconciliation over the windows new since last time.",
)


def build_reconcile_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The reconciliation check by itself, every hour, over new windows only."""
    return dg.ScheduleDefinition(
        name="reconcile_schedule",
        job=reconcile_job,
        # At :20, after the history catch-up has had the previous quarter-hours.
        cron_schedule="20 * * * *",
        execution_timezone="UTC",
        default_status=_with_the_stream(settings),
        description="Every hour: reconcile the 15-minute windows stored since the last run.",
    )


def build_defs(
    settings: Settings, config: CryptobotSettingsResource | None = None
) -> dg.Definitions:
    """The stream assets, checks, jobs, schedules and sensors (``config``: the shared resource)."""
    return dg.Definitions(
        assets=[streaming_data_1m],
        asset_checks=[reconciles_with_historical_15m],
        jobs=[stream_producer_job, stream_consumer_job, stream_repair_job, reconcile_job],
        sensors=[build_supervisor(settings)],
        schedules=[build_repair_schedule(settings), build_reconcile_schedule(settings)],
        resources={"config": config or CryptobotSettingsResource.from_settings(settings)},
    )
