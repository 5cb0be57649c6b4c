"""Response bodies: the core's typed rows as JSON-ready dicts, keys in the documented order.

Only str, int, float, bool, None, lists and dicts come out, so ``CoreJSONResponse`` can
serialise them without pydantic re-validating every row.
"""

from __future__ import annotations

from typing import Any

from cryptobot_core.query.rows import (
    CandlePage,
    CandleRow,
    DatasetFreshness,
    FeaturePage,
    GapReport,
    HeartbeatAge,
    LatestCandle,
    StatsReport,
    SymbolSummary,
    iso,
)
from cryptobot_core.universe import UniverseStatus


def candle_body(row: CandleRow) -> dict[str, Any]:
    """One candle as in /candles."""
    return {
        "open_time": row.open_time,
        "close_time": row.close_time,
        "open": row.open,
        "high": row.high,
        "low": row.low,
        "close": row.close,
        "volume": row.volume,
        "quote_volume": row.quote_volume,
        "taker_buy_base_volume": row.taker_buy_base_volume,
        "taker_buy_quote_volume": row.taker_buy_quote_volume,
        "trades": row.trades,
        "is_closed": row.is_closed,
        "provisional": row.provisional,
    }


def page_body(page: CandlePage) -> dict[str, Any]:
    """A page of candles and the cursor of the next one."""
    return {
        "symbol": page.symbol,
        "interval": page.interval.value,
        "source_dataset": page.source_dataset,
        "candles": [candle_body(row) for row in page.candles],
        "next_cursor": page.next_cursor,
    }


def latest_body(latest: LatestCandle) -> dict[str, Any]:
    """The newest candle of a native interval."""
    return {
        "symbol": latest.symbol,
        "interval": latest.interval.value,
        "candle": None if latest.candle is None else candle_body(latest.candle),
    }


def stats_body(report: StatsReport) -> dict[str, Any]:
    """Window statistics."""
    stats = report.stats
    return {
        "symbol": report.symbol,
        "interval": report.interval.value,
        "start": report.start,
        "end": report.end,
        "count": stats.count,
        "open": stats.open,
        "close": stats.close,
        "return": stats.return_,
        "volatility": stats.volatility,
        "high": stats.high,
        "low": stats.low,
        "volume": stats.volume,
        "provisional": report.provisional,
    }


def features_body(page: FeaturePage) -> dict[str, Any]:
    """Feature rows, oldest first."""
    return {
        "symbol": page.symbol,
        "features": [
            {
                "open_time": row.open_time,
                "close": row.close,
                "log_return": row.log_return,
                "volatility_1h": row.volatility_1h,
                "volatility_24h": row.volatility_24h,
                "vwap": row.vwap,
                "hl_range": row.hl_range,
                "volume_zscore": row.volume_zscore,
            }
            for row in page.features
        ],
    }


def gaps_body(report: GapReport) -> dict[str, Any]:
    """Runs of missing closed candles."""
    return {
        "symbol": report.symbol,
        "dataset": report.dataset,
        "start": report.start,
        "end": report.end,
        "gaps": [{"start": g.start, "end": g.end, "missing": g.missing} for g in report.gaps],
    }


def symbols_body(summaries: list[SymbolSummary], universe: UniverseStatus) -> dict[str, Any]:
    """The configured symbols and every symbol with data, per dataset, marked which is which."""
    by_symbol = {s.symbol: s for s in summaries}
    configured = set(universe.symbols)
    names = sorted(set(by_symbol) | configured)
    return {
        "universe": {
            "rule": universe.rule,
            "resolved_at": iso(universe.resolved_at) if universe.resolved_at else None,
            "count": len(universe.symbols),
        },
        "symbols": [
            {
                "symbol": name,
                "configured": name in configured,
                "has_data": name in by_symbol,
                "datasets": {
                    label: {
                        "first_open_time": span.first_open_time,
                        "last_open_time": span.last_open_time,
                        "count": span.count,
                    }
                    for label, span in (
                        by_symbol[name].datasets.items() if name in by_symbol else ()
                    )
                },
            }
            for name in names
        ],
    }


def freshness_body(datasets: dict[str, DatasetFreshness]) -> dict[str, Any]:
    """Newest open time, age and symbol count per dataset."""
    return {
        name: {
            "newest_open_time": info.newest_open_time,
            "age_seconds": info.age_seconds,
            "symbols": info.symbols,
        }
        for name, info in datasets.items()
    }


def heartbeats_body(beats: dict[str, HeartbeatAge | None]) -> dict[str, Any]:
    """Last heartbeat and its age per stream role (None when there is none)."""
    return {
        role: None
        if beat is None
        else {"updated_at": beat.updated_at, "age_seconds": beat.age_seconds}
        for role, beat in beats.items()
    }
