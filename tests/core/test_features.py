"""Spark features against a plain-Python computation of the same definitions."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson.decimal128 import Decimal128

from cryptobot_core.errors import ConfigError
from cryptobot_core.features import (
    FEATURE_FIELDS,
    LOOKBACK,
    compute_features,
    feature_documents,
    require_java,
    start_spark,
)
from cryptobot_core.launcher.java import java_available

STEP = timedelta(minutes=15)
START = datetime(2025, 3, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """The process's local Spark session.

    Not stopped here: the Dagster tests in the same pytest process get the same session
    from getOrCreate, so Spark starts once per test run; the JVM exits with pytest.
    """
    if not java_available():
        pytest.skip("Java is not installed")
    yield start_spark("local[2]")


def make_rows(seed: int = 7) -> list[dict[str, Any]]:
    """Two symbols over two days, with an exchange gap and some zero-volume candles."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for symbol, base in (("BTCUSDT", 60000.0), ("ETHUSDT", 3000.0)):
        price = base
        t = START - LOOKBACK
        while t < START + timedelta(days=1):
            # A 2-hour outage in the computed day: windows must not stretch over it.
            if START + timedelta(hours=5) <= t < START + timedelta(hours=7):
                t += STEP
                continue
            o = price
            c = round(o * math.exp(rng.gauss(0, 0.002)), 2)
            h = round(max(o, c) * (1 + rng.random() * 0.001), 2)
            low = round(min(o, c) * (1 - rng.random() * 0.001), 2)
            v = 0.0 if rng.random() < 0.05 else round(rng.uniform(0.5, 20), 5)
            q = round(v * (o + c) / 2, 4)
            rows.append(
                {
                    "symbol": symbol,
                    "open_time": t,
                    "close_time": t + STEP - timedelta(milliseconds=1),
                    "open": Decimal128(str(o)),
                    "high": Decimal128(str(h)),
                    "low": Decimal128(str(low)),
                    "close": Decimal128(str(c)),
                    "volume": Decimal128(str(v)),
                    "quote_volume": Decimal128(str(q)),
                }
            )
            price = c
            t += STEP
    return rows


def reference(
    rows: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[tuple[str, datetime], dict[str, Any]]:
    """The documented definitions, computed one candle at a time in plain Python."""

    def f(v: Any) -> float:
        return float(v.to_decimal())

    out = {}
    by_symbol: dict[str, dict[datetime, dict[str, Any]]] = {}
    for r in rows:
        by_symbol.setdefault(r["symbol"], {})[r["open_time"]] = r
    for symbol, candles in by_symbol.items():

        def ret(t: datetime, candles: dict[datetime, dict[str, Any]] = candles) -> float | None:
            prev = candles.get(t - STEP)
            if prev is None or t not in candles:
                return None
            return math.log(f(candles[t]["close"]) / f(prev["close"]))

        for t, r in candles.items():
            if not start <= t < end:
                continue

            def window(
                n: int, t: datetime = t, candles: dict[datetime, dict[str, Any]] = candles
            ) -> list[datetime]:
                return [t - STEP * k for k in range(n) if t - STEP * k in candles]

            def sd(values: list[float]) -> float | None:
                return statistics.stdev(values) if len(values) >= 2 else None

            r1 = [x for x in (ret(u) for u in window(4)) if x is not None]
            r24 = [x for x in (ret(u) for u in window(96)) if x is not None]
            vols = [f(candles[u]["volume"]) for u in window(96)]
            quotes = [f(candles[u]["quote_volume"]) for u in window(96)]
            vsd = sd(vols)
            out[(symbol, t)] = {
                "log_return": ret(t),
                "volatility_1h": sd(r1),
                "volatility_24h": sd(r24),
                "vwap": sum(quotes) / sum(vols) if sum(vols) > 0 else None,
                "hl_range": (f(r["high"]) - f(r["low"])) / f(r["close"]),
                "volume_zscore": (f(r["volume"]) - statistics.mean(vols)) / vsd if vsd else None,
            }
    return out


def test_spark_features_match_the_plain_python_definitions(spark: Any) -> None:
    rows = make_rows()
    end = START + timedelta(days=1)
    got = compute_features(spark, rows, START, end)
    want = reference(rows, START, end)
    assert len(got) == len(want) == 2 * (96 - 8)
    assert all(START <= g["open_time"] < end for g in got)
    for g in got:
        exp = want[(g["symbol"], g["open_time"])]
        for name in FEATURE_FIELDS:
            if exp[name] is None:
                assert g[name] is None, (g["symbol"], g["open_time"], name, g[name])
            else:
                assert g[name] == pytest.approx(exp[name], rel=1e-9, abs=1e-12), (name, g)
    # The first candle of the day uses the previous day's close (look-back), and the first
    # candle after the outage has no return because its previous candle is missing.
    first = next(g for g in got if g["symbol"] == "BTCUSDT" and g["open_time"] == START)
    assert first["log_return"] is not None and first["volatility_24h"] is not None
    after = next(
        g for g in got if g["symbol"] == "BTCUSDT" and g["open_time"] == START + timedelta(hours=7)
    )
    assert after["log_return"] is None


def test_feature_documents_keep_the_exact_close_and_the_api_field_names(spark: Any) -> None:
    rows = make_rows()[:200]
    start = rows[150]["open_time"]
    feats = compute_features(spark, rows, start, start + timedelta(hours=2))
    docs = feature_documents(feats, rows, computed_at=START)
    assert docs and set(docs[0]) == {
        "symbol",
        "open_time",
        "close_time",
        "close",
        "log_return",
        "volatility_1h",
        "volatility_24h",
        "vwap",
        "hl_range",
        "volume_zscore",
        "computed_at",
    }
    src = {r["open_time"]: r for r in rows}
    for d in docs:
        assert isinstance(d["close"], Decimal128)
        assert d["close"].to_decimal() == src[d["open_time"]]["close"].to_decimal()
        assert d["close_time"] == src[d["open_time"]]["close_time"]


def test_no_rows_give_no_features(spark: Any) -> None:
    assert compute_features(spark, [], START, START + timedelta(days=1)) == []


def test_without_java_the_error_says_java_17_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cryptobot_core.launcher.java.java_major_version", lambda: None)
    with pytest.raises(ConfigError, match="PySpark needs Java 17\\+"):
        require_java()


def test_decimal_inputs_are_accepted(spark: Any) -> None:
    rows = [dict(r, close=r["close"].to_decimal()) for r in make_rows()[:10]]
    assert isinstance(rows[0]["close"], Decimal)
    got = compute_features(spark, rows, rows[0]["open_time"], rows[-1]["open_time"] + STEP)
    assert len(got) == 10 and got[0]["log_return"] is None


def test_write_features_inserts_then_replaces_on_recomputation(mongo_db: Any) -> None:
    from cryptobot_core.store import FEATURES_15M, FeatureStore

    store = FeatureStore(mongo_db)
    store.ensure_indexes()
    rows = make_rows()[:3]
    feats = [
        {"symbol": r["symbol"], "open_time": r["open_time"], **dict.fromkeys(FEATURE_FIELDS, 0.5)}
        for r in rows
    ]
    first = store.write(feature_documents(feats, rows, computed_at=START))
    assert (first.inserted, first.updated) == (3, 0)
    feats[1]["vwap"] = 2.0
    again = store.write(feature_documents(feats, rows, computed_at=START))
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 2)
    stored = list(mongo_db[FEATURES_15M].find({}, {"_id": 0}).sort("open_time", 1))
    assert len(stored) == 3 and [d["vwap"] for d in stored] == [0.5, 2.0, 0.5]
