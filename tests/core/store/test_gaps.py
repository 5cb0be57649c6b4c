"""Gap records against a real MongoDB-protocol server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptobot_core.models import ms_to_dt
from cryptobot_core.store import STREAM_GAPS, HistoryGap, Store, StreamGap

T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC


def test_stream_gaps_are_recorded_once_listed_oldest_first_and_marked_repaired(
    store: Store, mongo_db: Any
) -> None:
    later = StreamGap.of_span(["ETHUSDT", "BTCUSDT"], T0 + 600_000, T0 + 900_000, "reconnect")
    older = StreamGap.of_span(["BTCUSDT"], T0, T0 + 120_000, "restart")
    store.stream_gaps.record([later, older, later])
    assert mongo_db[STREAM_GAPS].count_documents({}) == 2
    listed = store.stream_gaps.open()
    assert [g.id for g in listed] == [older.id, later.id]
    assert listed[1].symbols == ("BTCUSDT", "ETHUSDT") and listed[1].reason == "reconnect"
    assert listed[1].missed_from == ms_to_dt(T0 + 600_000)
    # Recording it again keeps the first record (and its detection time).
    store.stream_gaps.record([StreamGap.of_span(["BTCUSDT"], T0, T0 + 120_000, "again")])
    assert store.stream_gaps.open()[0].reason == "restart"
    assert store.stream_gaps.mark_repaired([older], ms_to_dt(T0 + 120_000)) == 1
    assert [g.id for g in store.stream_gaps.open()] == [later.id]
    assert mongo_db[STREAM_GAPS].find_one({"_id": older.id})["repaired_until"] == ms_to_dt(
        T0 + 120_000
    )
    assert store.stream_gaps.delete_all() == 2


def test_history_gaps_of_the_given_days_become_exactly_the_given_ones(store: Store) -> None:
    gaps = store.history_gaps()
    gaps.ensure_indexes()
    day1, day2 = date(2025, 3, 10), date(2025, 3, 11)
    t1 = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)
    t2 = datetime(2025, 3, 11, 5, 0, tzinfo=UTC)
    stamp = datetime(2025, 3, 12, tzinfo=UTC)
    gaps.replace_days(
        "BTCUSDT",
        [day1, day2],
        [HistoryGap("BTCUSDT", t1, "exchange_outage"), HistoryGap("BTCUSDT", t2, "x")],
        stamp,
    )
    span = (t1 - timedelta(hours=1), t2 + timedelta(hours=1))
    assert gaps.open_times("BTCUSDT", *span) == {t1, t2}
    # Re-running day 2 alone: its gap is gone now, day 1 is not touched.
    gaps.replace_days("BTCUSDT", [day2], [], stamp)
    assert gaps.open_times("BTCUSDT", *span) == {t1}
    assert gaps.count("BTCUSDT", *span) == 1 and gaps.count("ETHUSDT", *span) == 0
