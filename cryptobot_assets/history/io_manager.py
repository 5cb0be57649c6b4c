"""MongoIOManager: asset outputs into their MongoDB collection, inputs back out of it.

Writes are idempotent per partition: history candles are inserted once and never
rewritten, features are upserted on (symbol, open_time). Inputs for the features asset are
the upstream candles of the partition range plus the look-back its windows need.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg

from cryptobot_assets.history.partitions import split_keys
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_core.errors import CryptobotError
from cryptobot_core.features import LOOKBACK
from cryptobot_core.history import (
    HistoryBatch,
    day_start,
    ensure_history_indexes,
    load_range,
    write_batch,
)
from cryptobot_core.store import FEATURES_15M, history_collection


@dataclass(frozen=True)
class CandleWindow:
    """Stored candles of some symbols for [start, end) plus the look-back before ``start``."""

    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class FeatureRows:
    """Feature documents for ``candle_features_15m``."""

    docs: list[dict[str, Any]]


class MongoIOManager(dg.ConfigurableIOManager):
    """Stores history outputs in MongoDB with per-partition idempotent upserts."""

    config: dg.ResourceDependency[CryptobotSettingsResource]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Ensure the unique indexes once per run, before anything is written."""
        try:
            with self.config.open_store() as store:
                ensure_history_indexes(store, self.config.settings().history_intervals)
                store.features.ensure_indexes()
        except CryptobotError as exc:
            raise dg.Failure(description=str(exc)) from None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Write ``obj`` into the asset's collection and report row counts."""
        if obj is None:
            return
        if not isinstance(obj, HistoryBatch | FeatureRows):
            raise dg.Failure(
                description=f"MongoIOManager cannot store a {type(obj).__name__}; "
                "expected HistoryBatch or FeatureRows"
            )
        try:
            with self.config.open_store() as store:
                if isinstance(obj, HistoryBatch):
                    res = write_batch(store, obj)
                    metadata: dict[str, Any] = {
                        "collection": history_collection(obj.interval),
                        "candles_written": res.inserted,
                        "candles_already_stored": res.unchanged,
                        "gaps_recorded": res.gaps_recorded,
                        "dagster/row_count": obj.candle_count,
                    }
                else:
                    fres = store.features.write(obj.docs)
                    metadata = {
                        "collection": FEATURES_15M,
                        "rows_inserted": fres.inserted,
                        "rows_updated": fres.updated,
                        "dagster/row_count": len(obj.docs),
                    }
        except CryptobotError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> CandleWindow:
        """Candles of the upstream partitions, starting LOOKBACK earlier for rolling windows."""
        if not context.has_asset_partitions:
            raise dg.Failure(description="MongoIOManager loads partitioned history inputs only")
        pairs = split_keys(context.asset_partition_keys)
        if not pairs:
            raise dg.Failure(description="no upstream partitions to load")
        days: list[date] = sorted({d for _, d in pairs})
        symbols = tuple(sorted({s for s, _ in pairs}))
        start = day_start(days[0])
        end = day_start(days[-1]) + timedelta(days=1)
        try:
            with self.config.open_store() as store:
                rows = load_range(store, symbols, start - LOOKBACK, end)
        except CryptobotError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(
            "loaded %d candles of %s for %s..%s (+%s look-back)",
            len(rows),
            ",".join(symbols),
            days[0],
            days[-1],
            LOOKBACK,
        )
        return CandleWindow(symbols, start, end, rows)
