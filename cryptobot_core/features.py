"""Candle features with PySpark: a pure function of a SparkSession and stored 15m candles.

Per candle (symbol, open_time), computed over clock-time windows so an exchange gap never
stretches a window over more hours than it names:

- ``log_return``: ln(close / previous close); null when the previous 15m candle is missing.
- ``volatility_1h`` / ``volatility_24h``: sample standard deviation of ``log_return`` over
  the candles opening in the last 1 h (4 candles) / 24 h (96 candles), this one included;
  null with fewer than two returns. Not annualised: it is per-15-minute volatility.
- ``vwap``: sum(quote_volume) / sum(volume) over the last 24 h; null when no volume traded.
- ``hl_range``: (high - low) / close of this candle.
- ``volume_zscore``: (volume - mean) / sample stddev of volume over the last 24 h; null when
  the window has fewer than two candles or a constant volume.

The windows look back up to 24 h, so computing a day needs the previous day's candles
(:data:`LOOKBACK`); rows before ``start`` feed the windows but are not returned.
Features are floats: derived statistics, not exchange data (the close stays Decimal128).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptobot_core.launcher.java import require_java
from cryptobot_core.models import dt_to_ms, ms_to_dt
from cryptobot_core.store.codec import stored_float
from cryptobot_core.store.features import FEATURE_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STEP_S = 15 * 60
WINDOW_1H = 4
WINDOW_24H = 96
# The longest window spans 96 candles: 95 before this one, plus one more for the first
# return's previous close. A whole previous day (96) covers it.
LOOKBACK = timedelta(days=1)
_INPUT_FIELDS = ("close", "high", "low", "volume", "quote_volume")


def spark_config(master: str, *, app_name: str = "cryptobot-features") -> dict[str, str]:
    """Light Spark settings for small local jobs (no UI, few shuffle partitions)."""
    return {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "1g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def start_spark(master: str) -> SparkSession:
    """A SparkSession with :func:`spark_config` (checks for Java first)."""
    require_java()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_config(master).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def compute_features(
    spark: SparkSession,
    rows: Sequence[dict[str, Any]],
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """Features of every candle in ``rows`` opening in [start, end), using earlier rows as look-back.

    ``rows`` are stored candle documents (``symbol``, ``open_time``, ``close``, ``high``,
    ``low``, ``volume``, ``quote_volume``; stored decimals or numbers). Returns one dict per
    candle with ``symbol``, ``open_time`` and :data:`FEATURE_FIELDS`, sorted.
    """
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    if not rows:
        return []
    frame = pd.DataFrame(
        {
            "symbol": [r["symbol"] for r in rows],
            "ts": [dt_to_ms(r["open_time"]) // 1000 for r in rows],
            **{name: [stored_float(r[name]) for r in rows] for name in _INPUT_FIELDS},
        }
    )
    schema = StructType(
        [StructField("symbol", StringType(), False), StructField("ts", LongType(), False)]
        + [StructField(name, DoubleType(), False) for name in _INPUT_FIELDS]
    )
    df = spark.createDataFrame(frame, schema=schema)

    by_time = Window.partitionBy("symbol").orderBy("ts")
    w1h = by_time.rangeBetween(-(WINDOW_1H - 1) * STEP_S, 0)
    w24h = by_time.rangeBetween(-(WINDOW_24H - 1) * STEP_S, 0)
    prev_close = F.lag("close").over(by_time)
    prev_ts = F.lag("ts").over(by_time)
    df = df.withColumn(
        "log_return",
        F.when(
            (prev_ts == F.col("ts") - STEP_S) & (prev_close > 0) & (F.col("close") > 0),
            F.log(F.col("close") / prev_close),
        ),
    )

    def stddev(col: str, window: Any) -> Any:
        # stddev_samp is undefined below two values; say so with null, never NaN.
        return F.when(F.count(col).over(window) >= 2, F.stddev_samp(col).over(window))

    vol_sum = F.sum("volume").over(w24h)
    vol_std = stddev("volume", w24h)
    df = (
        df.withColumn("volatility_1h", stddev("log_return", w1h))
        .withColumn("volatility_24h", stddev("log_return", w24h))
        .withColumn("vwap", F.when(vol_sum > 0, F.sum("quote_volume").over(w24h) / vol_sum))
        .withColumn(
            "hl_range", F.when(F.col("close") > 0, (F.col("high") - F.col("low")) / F.col("close"))
        )
        .withColumn(
            "volume_zscore",
            F.when(vol_std > 0, (F.col("volume") - F.avg("volume").over(w24h)) / vol_std),
        )
    )
    lo, hi = dt_to_ms(start) // 1000, dt_to_ms(end) // 1000
    out: Any = (
        df.where((F.col("ts") >= lo) & (F.col("ts") < hi))
        .select("symbol", "ts", *FEATURE_FIELDS)
        .orderBy("symbol", "ts")
        .toPandas()
    )
    result: list[dict[str, Any]] = []
    for rec in out.to_dict("records"):
        item: dict[str, Any] = {
            "symbol": rec["symbol"],
            "open_time": ms_to_dt(int(rec["ts"]) * 1000),
        }
        for name in FEATURE_FIELDS:
            value = rec[name]
            item[name] = None if value is None or math.isnan(value) else float(value)
        result.append(item)
    return result


def feature_documents(
    features: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    computed_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The ``candle_features_15m`` documents: features plus the candle's close and close_time.

    The close is carried exactly as read; the store keeps it a Decimal128 when it writes.
    """
    by_key = {(r["symbol"], dt_to_ms(r["open_time"])): r for r in rows}
    stamp = computed_at or datetime.now(UTC)
    docs = []
    for feat in features:
        candle = by_key[(feat["symbol"], dt_to_ms(feat["open_time"]))]
        docs.append(
            {
                "symbol": feat["symbol"],
                "open_time": feat["open_time"],
                "close_time": candle["close_time"],
                "close": candle["close"],
                **{name: feat[name] for name in FEATURE_FIELDS},
                "computed_at": stamp,
            }
        )
    return docs
