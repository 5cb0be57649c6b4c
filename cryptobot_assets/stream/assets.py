"""The streaming dataset as an external asset: written by the stream runs, observed by the sensor."""

from __future__ import annotations

import dagster as dg

from cryptobot_core.store import STREAMING_1M

STREAMING_ASSET_KEY = dg.AssetKey(STREAMING_1M)

streaming_data_1m = dg.AssetSpec(
    key=STREAMING_ASSET_KEY,
    description=(
        "Live 1-minute candles: Binance WebSocket → Kafka → MongoDB streaming_data_1m, kept "
        "alive by the stream_supervisor sensor, gaps filled from REST (source=repair)."
    ),
    group_name="stream",
    kinds={"mongodb", "kafka"},
    metadata={"collection": STREAMING_1M, "key": "(symbol, open_time)"},
)
