"""Every collection name, defined once. History collections are named after their interval."""

from __future__ import annotations

from cryptobot_core.intervals import Interval

STREAMING_1M = "streaming_data_1m"
FEATURES_15M = "candle_features_15m"
HEARTBEATS = "stream_heartbeats"
DEAD_LETTERS = "dead_letters"
STREAM_GAPS = "stream_gaps"
EXCHANGE_BANS = "exchange_bans"
CHECKPOINTS = "checkpoints"
SYMBOL_UNIVERSE = "symbol_universe"


def history_collection(interval: Interval | str) -> str:
    """Candles collected from history at ``interval``, e.g. ``historical_data_15m``."""
    return f"historical_data_{Interval.parse(interval).value}"


def history_gaps_collection(interval: Interval | str) -> str:
    """Exchange-side gaps found while collecting history, e.g. ``historical_gaps_15m``."""
    return f"historical_gaps_{Interval.parse(interval).value}"


HISTORICAL_15M = history_collection(Interval.M15)
HISTORY_GAPS_15M = history_gaps_collection(Interval.M15)
