"""A repair that comes back short leaves its gap open, and the next pass completes it.

The exchange here is a stand-in REST client (it withholds one minute on the first call), so
the store side is real SecantusDB and the outcome is checked on the full stored window.
"""

from __future__ import annotations

from typing import Any

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.store import STREAM_GAPS, STREAMING_1M, CandleStore, StreamGap, open_store
from cryptobot_core.stream.repair import repair
from tests.core.stream.conftest import T0, make_candle

M1 = Interval.M1
MINUTES = 10
NOW = T0 + MINUTES * M1.ms + 5_000


class Exchange:
    """REST klines of one symbol; ``withhold`` minutes are missing from the next answer only."""

    def __init__(self, withhold: set[int]) -> None:
        self.candles = {
            T0 + i * M1.ms: make_candle("BTCUSDT", T0 + i * M1.ms, price=f"{50 + i}.5")
            for i in range(MINUTES)
        }
        self.withhold = withhold

    def server_time_ms(self) -> int:
        return NOW

    def klines(self, symbol: str, interval: Any, start_ms: int, end_ms: int) -> list[Candle]:
        held, self.withhold = self.withhold, set()
        return [
            c for t, c in sorted(self.candles.items()) if start_ms <= t < end_ms and t not in held
        ]

    def close(self) -> None:
        pass


def test_a_short_repair_stays_open_and_the_next_pass_completes_it(
    settings: Settings, mongo_db: Any
) -> None:
    settings = settings.model_copy(update={"symbols": ["BTCUSDT"]})
    store = CandleStore(mongo_db, STREAMING_1M)
    store.upsert([make_candle("BTCUSDT", T0 + i * M1.ms) for i in (0, 1, 8, 9)])  # streamed
    with open_store(settings) as db:
        db.stream_gaps.record([StreamGap.of_span(["BTCUSDT"], T0 + 2 * M1.ms, T0 + 8 * M1.ms, "x")])
    exchange = Exchange(withhold={T0 + 4 * M1.ms})

    first = repair(settings, client=exchange)
    assert first.gaps_short == 1 and first.gaps_resolved == 0
    gap = mongo_db[STREAM_GAPS].find_one({})
    assert gap["repaired"] is False and gap["attempts"] == 1

    second = repair(settings, client=exchange)
    assert second.total_repaired == 1 and second.gaps_resolved == 1
    assert mongo_db[STREAM_GAPS].count_documents({"repaired": False}) == 0
    stored = store.find("BTCUSDT", ms_to_dt(T0), ms_to_dt(T0 + MINUTES * M1.ms))
    assert [c.open_ms for c in stored] == M1.opens_between(T0, T0 + MINUTES * M1.ms)
    for c in stored:
        if T0 + 2 * M1.ms <= c.open_ms < T0 + 8 * M1.ms:  # repaired: the exchange's values
            assert c.with_source(exchange.candles[c.open_ms].source) == exchange.candles[c.open_ms]
