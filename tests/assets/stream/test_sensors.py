"""stream_supervisor with an ephemeral Dagster instance and the real test store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream import sensors
from cryptobot_assets.stream.definitions import build_defs
from cryptobot_assets.stream.jobs import stream_consumer_job, stream_producer_job
from cryptobot_core.settings import Settings
from cryptobot_core.store import HEARTBEATS, STREAMING_1M, CandleStore, StreamGap, StreamGapStore
from tests.core.stream.conftest import T0, make_candle


def _tick(
    instance: dg.DagsterInstance, settings: Settings, cursor: str | None = None
) -> dg.SensorResult:
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"config": CryptobotSettingsResource.from_settings(settings)},
    )
    result = sensors.build_supervisor(settings)(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def _started_run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> str:
    run = instance.create_run_for_job(job_def=job)
    instance.report_dagster_event(
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name), run_id=run.run_id
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
    return run.run_id


def _beat(mongo_db: Any, role: str, run_id: str, at: datetime) -> None:
    mongo_db[HEARTBEATS].replace_one(
        {"_id": role},
        {
            "run_id": run_id,
            "pid": 1,
            "updated_at": at,
            "stats": {"lag": 3, "lag_corrected": True, "messages_per_s": 2.5, "reconnects": 1},
        },
        upsert=True,
    )


def test_definitions_load(settings: Settings) -> None:
    defs = build_defs(settings)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "stream_producer_job",
        "stream_consumer_job",
        "stream_repair_job",
    }
    assert defs.resolve_sensor_def("stream_supervisor") is not None


def test_supervisor_launches_missing_runs_and_observes(settings: Settings, mongo_db: Any) -> None:
    CandleStore(mongo_db, STREAMING_1M).upsert([make_candle("BTCUSDT", T0)])
    with dg.DagsterInstance.ephemeral() as instance:
        result = _tick(instance, settings)
    keys = sorted((r.job_name, r.run_key) for r in result.run_requests or [])
    assert keys == [("stream_consumer_job", "consumer-1"), ("stream_producer_job", "producer-1")]
    cursor = json.loads(result.cursor or "{}")
    assert {k: cursor[k] for k in ("producer", "consumer")} == {"producer": 1, "consumer": 1}
    [obs] = result.asset_events
    assert isinstance(obs, dg.AssetObservation)
    assert obs.asset_key == dg.AssetKey("streaming_data_1m")
    assert obs.metadata["candles"].value == 1
    assert obs.metadata["newest_candle_age_s"].value > 0


def test_supervisor_keeps_healthy_runs_and_relaunches_a_stale_one(
    settings: Settings, mongo_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)  # past the start-up grace period
    monkeypatch.setattr(sensors, "_now", lambda: later)
    with dg.DagsterInstance.ephemeral() as instance:
        producer = _started_run(instance, stream_producer_job)
        consumer = _started_run(instance, stream_consumer_job)
        _beat(mongo_db, "producer", producer, later - timedelta(seconds=5))
        _beat(mongo_db, "consumer", consumer, later - timedelta(minutes=5))  # hung
        cursor = json.dumps({"producer": 1, "consumer": 1})
        result = _tick(instance, settings, cursor)
        assert [(r.job_name, r.run_key) for r in result.run_requests or []] == [
            ("stream_consumer_job", "consumer-2")
        ]
        assert instance.get_run_by_id(consumer).status in (  # type: ignore[union-attr]
            dg.DagsterRunStatus.CANCELED,
            dg.DagsterRunStatus.CANCELING,
        )
        assert instance.get_run_by_id(producer).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
        [obs] = result.asset_events
        assert obs.metadata["consumer_lag"].value == 3
        assert obs.metadata["producer_reconnects"].value == 1


def test_supervisor_requests_repair_for_recorded_gaps(settings: Settings, mongo_db: Any) -> None:
    StreamGapStore(mongo_db).record([StreamGap.of_span(["BTCUSDT"], T0, T0 + 180_000, "reconnect")])
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, settings)
    repairs = [r for r in first.run_requests or [] if r.job_name == "stream_repair_job"]
    assert len(repairs) == 1 and repairs[0].run_key and repairs[0].run_key.startswith("repair-")
