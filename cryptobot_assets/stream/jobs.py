"""Long-running stream jobs (one op each) and the repair job.

The producer and consumer ops run their core loop on a worker thread until the run is
terminated: Dagster interrupts the op's main thread, which then asks the loop to stop,
waits for it to finish its batch (offsets are committed only after writes), and re-raises.
"""

import threading
from collections.abc import Callable
from typing import Any

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.assets import STREAMING_ASSET_KEY
from cryptobot_core.stream.consumer import StreamConsumer
from cryptobot_core.stream.producer import StreamProducer
from cryptobot_core.stream.repair import repair

STOP_TIMEOUT_S = 60.0


def run_until_terminated(
    context: dg.OpExecutionContext, loop: Callable[[threading.Event], Any]
) -> Any:
    """Run ``loop(stop)`` on a thread; on run termination set ``stop`` and wait for it."""
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = loop(stop)
        except BaseException as exc:  # re-raised on the op thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"stream-{context.run_id[:8]}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(1.0)
    except BaseException:
        context.log.info("run terminated: stopping the stream loop")
        stop.set()
        worker.join(STOP_TIMEOUT_S)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


@dg.op(description="Stream Binance 1m klines from the WebSocket into Kafka until terminated.")
def run_stream_producer(context: dg.OpExecutionContext, config: CryptobotSettingsResource) -> None:
    """Run the producer loop."""
    settings = config.settings()
    stats = run_until_terminated(
        context, lambda stop: StreamProducer(settings, run_id=context.run_id).run(stop)
    )
    context.log.info(f"producer stopped: {stats}")


@dg.op(description="Consume the kline topic into MongoDB streaming_data_1m until terminated.")
def run_stream_consumer(context: dg.OpExecutionContext, config: CryptobotSettingsResource) -> None:
    """Run the consumer loop."""
    settings = config.settings()
    stats = run_until_terminated(
        context, lambda stop: StreamConsumer(settings, run_id=context.run_id).run(stop)
    )
    context.log.info(f"consumer stopped: {stats}")


@dg.op(description="Fill missing closed minutes of streaming_data_1m from REST 1m klines.")
def repair_stream_gaps(context: dg.OpExecutionContext, config: CryptobotSettingsResource) -> None:
    """Detect and repair gaps, and record what was done on the streaming asset."""
    report = repair(config.settings())
    context.log_event(
        dg.AssetObservation(
            asset_key=STREAMING_ASSET_KEY,
            metadata={
                "repair_missing_minutes": report.total_missing,
                "repair_filled_minutes": report.total_repaired,
                "repair_unavailable_minutes": sum(report.unavailable.values()),
                "repair_gaps_resolved": report.gaps_resolved,
            },
        )
    )


@dg.job(executor_def=dg.in_process_executor, tags={"cryptobot/stream": "producer"})
def stream_producer_job() -> None:
    """Long-running: WebSocket → Kafka."""
    run_stream_producer()


@dg.job(executor_def=dg.in_process_executor, tags={"cryptobot/stream": "consumer"})
def stream_consumer_job() -> None:
    """Long-running: Kafka → MongoDB."""
    run_stream_consumer()


@dg.job(executor_def=dg.in_process_executor, tags={"cryptobot/stream": "repair"})
def stream_repair_job() -> None:
    """Repair gaps in streaming_data_1m from REST."""
    repair_stream_gaps()
