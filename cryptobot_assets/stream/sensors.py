"""`stream_supervisor`: exactly one producer and one consumer run, observed every tick."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.runs import ACTIVE_RUN_STATUSES
from cryptobot_assets.stream.assets import STREAMING_ASSET_KEY
from cryptobot_assets.stream.jobs import stream_consumer_job, stream_producer_job, stream_repair_job
from cryptobot_core.errors import CryptobotError
from cryptobot_core.settings import Settings
from cryptobot_core.store import Store
from cryptobot_core.stream.heartbeat import read_heartbeats
from cryptobot_core.stream.supervision import (
    STALL_AFTER_S,
    Action,
    ActiveRun,
    Progress,
    decide,
    stall,
    track,
)

log = logging.getLogger(__name__)

JOBS = {"producer": stream_producer_job.name, "consumer": stream_consumer_job.name}


def _now() -> datetime:
    return datetime.now(UTC)


def active_runs(instance: dg.DagsterInstance, job_name: str) -> list[ActiveRun]:
    """Runs of ``job_name`` that are queued, starting or started."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES)
    )
    out = []
    for rec in records:
        started = rec.start_time
        out.append(
            ActiveRun(
                rec.dagster_run.run_id, datetime.fromtimestamp(started, UTC) if started else None
            )
        )
    return out


def terminate(instance: dg.DagsterInstance, run_id: str, reason: str) -> None:
    """Ask the run launcher to terminate a run; mark it canceled if it cannot be reached."""
    try:
        asked = bool(instance.run_coordinator.cancel_run(run_id))
    except Exception as exc:  # a dead run worker cannot be reached; fall through
        log.warning("could not terminate run %s: %s", run_id, exc)
        asked = False
    if not asked:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message=f"stream_supervisor: {reason}")


def _metadata(stats: dict[str, Any], key: str) -> Any:
    value = stats.get(key)
    return value if isinstance(value, int | float | bool | str) else None


def observe(store: Store, heartbeats: dict[str, dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Metadata for the AssetObservation on streaming_data_1m."""
    consumer = heartbeats.get("consumer", {}).get("stats", {})
    producer = heartbeats.get("producer", {}).get("stats", {})
    newest = store.stream.newest_event_doc()
    dead = store.dead_letters.estimated_count()
    candles = store.stream.estimated_count()
    meta: dict[str, Any] = {"candles": candles, "dead_letters": dead}
    if newest is not None:
        t = newest.get("event_time") or newest["close_time"]
        t = t if t.tzinfo else t.replace(tzinfo=UTC)
        meta["newest_candle_age_s"] = round((now - t).total_seconds(), 3)
    for name, stats, key in (
        ("consumer_lag", consumer, "lag"),
        ("consumer_lag_corrected", consumer, "lag_corrected"),
        ("consumer_messages_per_s", consumer, "messages_per_s"),
        ("consumer_store_retries", consumer, "store_retries"),
        ("producer_messages_per_s", producer, "messages_per_s"),
        ("producer_reconnects", producer, "reconnects"),
        ("producer_spool_pending", producer, "spool_pending"),
        ("producer_failed", producer, "failed"),
    ):
        value = _metadata(stats, key)
        if value is not None:
            meta[name] = value
    return meta


def build_supervisor(settings: Settings) -> dg.SensorDefinition:
    """The stream_supervisor sensor, ticking at settings.stream_supervisor_interval_s."""
    stale_s, grace_s = settings.stream_heartbeat_stale_s, settings.stream_start_grace_s
    stall_s = settings.stream_stall_s

    @dg.sensor(
        name="stream_supervisor",
        description="Keeps exactly one producer and one consumer run alive, relaunches hung "
        "ones (stale heartbeat, or beating without progress), starts gap repair, and observes lag and freshness.",
        jobs=[stream_producer_job, stream_consumer_job, stream_repair_job],
        minimum_interval_seconds=settings.stream_supervisor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING
        if settings.stream_supervisor_autostart
        else dg.DefaultSensorStatus.STOPPED,
    )
    def stream_supervisor(
        context: dg.SensorEvaluationContext, config: CryptobotSettingsResource
    ) -> dg.SensorResult:
        """One supervision tick."""
        return supervise(context, config, stale_s=stale_s, grace_s=grace_s, stall_s=stall_s)

    return stream_supervisor


def supervise(
    context: dg.SensorEvaluationContext,
    config: CryptobotSettingsResource,
    *,
    stale_s: float,
    grace_s: float,
    stall_s: float = STALL_AFTER_S,
) -> dg.SensorResult:
    """Launch missing runs, relaunch hung ones, request repair, observe the stream."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = _now()
    instance = context.instance
    requests: list[dg.RunRequest] = []
    events: list[dg.AssetObservation] = []
    with config.open_store() as store:
        try:
            heartbeats = read_heartbeats(store.heartbeats)
            readable = True
        except CryptobotError as exc:
            # Without heartbeats only "missing run" can be decided; hung runs wait a tick.
            context.log.warning(f"heartbeats unreadable: {exc}")
            heartbeats, readable = {}, False
        progress = cursor.setdefault("progress", {})
        for role, job_name in JOBS.items():
            runs = active_runs(instance, job_name)
            beat = heartbeats.get(role)
            tracked = track(Progress.from_json(progress.get(role)), role, beat, now)
            if tracked is not None:
                progress[role] = tracked.to_json()
            decision = decide(
                runs,
                beat,
                now,
                stale_after_s=stale_s,
                grace_s=grace_s if readable else float("inf"),
                stalled=stall(role, tracked, beat, now, stall_s),
            )
            for run_id in decision.terminate:
                context.log.warning(f"terminating {job_name} run {run_id}: {decision.reason}")
                terminate(instance, run_id, decision.reason)
            if decision.action in (Action.LAUNCH, Action.RELAUNCH):
                generation = int(cursor.get(role, 0)) + 1
                cursor[role] = generation
                context.log.info(f"launching {job_name} #{generation}: {decision.reason}")
                requests.append(
                    dg.RunRequest(
                        run_key=f"{role}-{generation}",
                        job_name=job_name,
                        tags={"cryptobot/stream": role},
                    )
                )
        try:
            gaps = store.stream_gaps.open()
            if gaps and not active_runs(instance, stream_repair_job.name):
                # A counter, not the gap ids: a repair that came back short leaves the same
                # gaps open, and must be requested again on the next tick.
                generation = int(cursor.get("repair", 0)) + 1
                cursor["repair"] = generation
                requests.append(
                    dg.RunRequest(
                        run_key=f"repair-{generation}",
                        job_name=stream_repair_job.name,
                        tags={"cryptobot/stream": "repair"},
                    )
                )
            events.append(
                dg.AssetObservation(
                    asset_key=STREAMING_ASSET_KEY, metadata=observe(store, heartbeats, now)
                )
            )
        except CryptobotError as exc:
            context.log.warning(f"store unavailable, no observation this tick: {exc}")
    return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))
