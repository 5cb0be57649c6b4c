"""History assets: candles per (UTC day, symbol), one asset per interval, and the PySpark
features of the 15m candles per day."""

import warnings
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, ParamSpec

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from cryptobot_assets.history.io_manager import CandleWindow, FeatureRows
from cryptobot_assets.history.partitions import (
    DATE_DIM,
    daily_partitions,
    history_partitions,
    split_keys,
)
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_core.errors import CryptobotError
from cryptobot_core.exchange.archive import ArchiveKlines
from cryptobot_core.features import compute_features, feature_documents, require_java
from cryptobot_core.history import (
    INTERVAL,
    HistoryBatch,
    fetch_days,
    klines_asset_name,
    max_days_per_run,
)
from cryptobot_core.intervals import Interval
from cryptobot_core.settings import Settings
from cryptobot_core.store import FEATURES_15M, history_collection

# Every exchange-bound step takes a slot in this Dagster concurrency pool, so however many
# backfill runs are queued only `limit` of them call the exchange at once.
EXCHANGE_POOL = "binance_rest"
# A klines_15m run covers at most this many day partitions of one symbol: 180 days x 2
# symbols is 12 runs instead of 360, each a few paged requests (10 days per /klines page).
MAX_DAYS_PER_RUN = max_days_per_run(INTERVAL)
KLINES_KEY = dg.AssetKey(klines_asset_name(INTERVAL))
FEATURES_AUTOMATION = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)
FEATURES_KEY = dg.AssetKey(FEATURES_15M)


def _describe(partitions: list[tuple[str, date]]) -> str:
    symbols = sorted({s for s, _ in partitions})
    days = sorted({d for _, d in partitions})
    if not days:
        return "no partitions"
    span = days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"
    return f"{','.join(symbols)} {span}"


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if value is None:
            continue
        out[key] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
    return out


def klines_key(interval: Interval) -> dg.AssetKey:
    """The asset key of history at ``interval`` (``klines_15m`` for the default)."""
    return dg.AssetKey(klines_asset_name(interval))


def klines_keys(settings: Settings) -> list[dg.AssetKey]:
    """The klines assets of every configured history interval."""
    return [klines_key(i) for i in settings.history_intervals]


P = ParamSpec("P")


def _quietly(build: Callable[P, dg.AssetsDefinition]) -> Callable[P, dg.AssetsDefinition]:
    """Build without Dagster's beta warnings (backfill_policy, partition mappings): chosen on purpose."""

    def wrapped(*args: P.args, **kwargs: P.kwargs) -> dg.AssetsDefinition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=dg.BetaWarning)
            return build(*args, **kwargs)

    wrapped.__doc__ = build.__doc__
    return wrapped


@_quietly
def build_klines_asset(settings: Settings, interval: Interval = INTERVAL) -> dg.AssetsDefinition:
    """The ``klines_<interval>`` asset over (date, symbol) partitions from settings.start_date."""
    name = klines_asset_name(interval)
    collection = history_collection(interval)

    @dg.asset(
        name=name,
        partitions_def=history_partitions(settings),
        pool=EXCHANGE_POOL,
        backfill_policy=dg.BackfillPolicy.multi_run(
            max_partitions_per_run=max_days_per_run(interval)
        ),
        io_manager_key="mongo_io_manager",
        group_name="history",
        kinds={"python", "mongodb"},
        metadata={"collection": collection, "interval": interval.value},
        description=f"Binance {interval.value} candles of one UTC day per symbol, stored in "
        f"{collection}.",
    )
    def klines(
        context: dg.AssetExecutionContext, config: CryptobotSettingsResource
    ) -> dg.Output[HistoryBatch]:
        partitions = split_keys(context.partition_keys)
        what = _describe(partitions)
        try:
            with config.history_client() as client:
                # The exchange's clock decides what is closed: the still-open candle is never
                # stored.
                now_ms = client.server_time_ms()
                batch = fetch_days(client, partitions, now_ms, interval=interval)
                source = client.report.summary() if isinstance(client, ArchiveKlines) else {}
        except CryptobotError as exc:
            # Nothing was written: the run fails as a whole and a re-run fetches it all again.
            raise dg.Failure(
                description=f"{name} {what}: {exc}",
                metadata={"partitions": len(partitions)},
            ) from None
        summary = {**batch.summary(), **source}
        for miss in source.get("archive_fallback_list", [])[:20]:
            context.log.warning("archive file not used, REST instead: %s", miss["reason"])
        context.log.info(
            "%s %s: %d candles fetched for %d partitions, %d missing on the exchange",
            name,
            what,
            batch.candle_count,
            len(partitions),
            summary["missing_candles"],
        )
        for gap in batch.gaps[:20]:
            context.log.warning(
                "exchange has no %s candle for %s at %s (%s)",
                interval.value,
                gap.symbol,
                gap.open_time.isoformat(),
                gap.reason,
            )
        return dg.Output(batch, metadata=_json_safe(summary))

    return klines


@_quietly
def build_features_asset(settings: Settings) -> dg.AssetsDefinition:
    """The ``candle_features_15m`` asset: one daily partition covers every symbol."""

    @dg.asset(
        name=FEATURES_KEY.path[-1],
        partitions_def=daily_partitions(settings),
        ins={
            "klines_15m": dg.AssetIn(
                key=KLINES_KEY,
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                    partition_dimension_name=DATE_DIM
                ),
            )
        },
        # One Spark job for a whole backfill range, not one per day.
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Recompute any day whose candles changed, once all its symbols are in and none is
        # still loading; not only the latest day, so backfilled history gets features too.
        automation_condition=FEATURES_AUTOMATION,
        io_manager_key="mongo_io_manager",
        group_name="history",
        kinds={"spark", "mongodb"},
        metadata={"collection": FEATURES_15M},
    )
    def candle_features_15m(
        context: dg.AssetExecutionContext, pyspark: LazyPySparkResource, klines_15m: CandleWindow
    ) -> dg.Output[FeatureRows]:
        """Log return, 1h/24h volatility, VWAP, high-low range and volume z-score per candle."""
        try:
            require_java()
        except CryptobotError as exc:
            raise dg.Failure(description=str(exc)) from None
        window = klines_15m
        features = compute_features(pyspark.spark_session, window.rows, window.start, window.end)
        docs = feature_documents(features, window.rows)
        context.log.info(
            "candle_features_15m %s..%s: %d feature rows from %d candles (with look-back) of %s",
            window.start.date(),
            (window.end - timedelta(days=1)).date(),
            len(docs),
            len(window.rows),
            ",".join(window.symbols),
        )
        return dg.Output(
            FeatureRows(docs),
            metadata={"symbols": ",".join(window.symbols), "candles_read": len(window.rows)},
        )

    return candle_features_15m
