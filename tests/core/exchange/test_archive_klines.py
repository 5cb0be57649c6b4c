"""The archive fast path over real HTTP against the simulator: the same candles as REST,
whatever the archive files do wrong (missing, bad checksum, truncated, half the rows, not
published yet), with every fallback named in the report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cryptobot_core.exchange import BinanceClient
from cryptobot_core.exchange.archive import ArchiveFile, ArchiveKlines, plan_files
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, Source
from cryptobot_core.simulator import SimClock
from cryptobot_core.simulator.faults import Faults
from tests.fixtures.simulator import SIM_NOW_MS, MakeSimulator


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# From a millisecond-era month (2024-12) over microsecond-era months to yesterday's daily
# file; the simulator's clock stands at 2026-01-15T12:34:56Z.
START, END = ms("2024-12-20T00:00:00"), ms("2026-01-15T00:00:00")
OUTAGE = (ms("2025-06-03T10:00:00"), ms("2025-06-03T13:15:00"), "ETHUSDT")


def rows(candles: list[Candle]) -> list[list[Any]]:
    return [[c.symbol, c.interval.value, *c.to_rest_row()] for c in candles]


def both(server: Any, requests: list[tuple[str, str, int, int]], **kwargs: Any) -> Any:
    with BinanceClient(server.url) as rest, ArchiveKlines(rest, server.url) as archive:
        fast = archive.klines_many(requests, **kwargs)
        slow = rest.klines_many(requests, **kwargs)
        return fast, slow, archive.report, rest.stats


def test_plan_takes_closed_months_whole_and_closed_days_of_this_month() -> None:
    files = plan_files("BTCUSDT", Interval.M15, START, END, SIM_NOW_MS)
    monthly = [f.period for f in files if not f.daily]
    daily = [f.period for f in files if f.daily]
    assert monthly[0] == "2024-12" and monthly[-1] == "2025-12" and len(monthly) == 13
    assert daily == [f"2026-01-{d:02d}" for d in range(1, 15)]
    # A month or day not over yet has no file: REST covers it.
    assert (
        plan_files("BTCUSDT", Interval.M15, ms("2026-01-15T00:00:00"), SIM_NOW_MS, SIM_NOW_MS) == []
    )
    # Intervals above a day have no daily files.
    assert all(not f.daily for f in plan_files("BTCUSDT", Interval.W1, START, END, SIM_NOW_MS))


@pytest.mark.parametrize("interval", ["15m", "1m"])
def test_archives_give_exactly_the_rest_candles(
    make_simulator: MakeSimulator, interval: str
) -> None:
    server = make_simulator(outages=[OUTAGE])
    start = START if interval == "15m" else ms("2025-12-30T00:00:00")
    requests = [(s, interval, start, END) for s in ("BTCUSDT", "ETHUSDT")]
    fast, slow, report, _ = both(server, requests)
    assert [rows(r) for r in fast] == [rows(r) for r in slow]
    assert all(len(r) > 0 for r in fast)
    assert {c.source for r in fast for c in r} == {Source.ARCHIVE}
    assert report.fallbacks == []
    # The outage is a run the archive lacks: REST is asked for it, and has nothing either.
    expected_files = len(plan_files("BTCUSDT", Interval(interval), start, END, SIM_NOW_MS))
    assert report.files == 2 * expected_files
    assert report.rest_ranges == (1 if interval == "15m" else 0)


def test_every_broken_file_falls_back_to_rest_and_says_why(make_simulator: MakeSimulator) -> None:
    faults = Faults()
    server = make_simulator(faults=faults)
    faults.break_archive("missing", "BTCUSDT", "15m", "2025-03")
    faults.break_archive("bad_checksum", "BTCUSDT", "15m", "2025-07")
    faults.break_archive("truncated", "ETHUSDT", "15m", "2025-11")
    faults.break_archive("partial", "ETHUSDT", "15m", "2026-01-10")
    requests = [(s, "15m", START, END) for s in ("BTCUSDT", "ETHUSDT")]
    fast, slow, report, _ = both(server, requests)
    assert [rows(r) for r in fast] == [rows(r) for r in slow]
    reasons = {f["file"]: f["reason"] for f in report.fallbacks}
    assert set(reasons) == {
        "BTCUSDT-15m-2025-03.zip",
        "BTCUSDT-15m-2025-07.zip",
        "ETHUSDT-15m-2025-11.zip",
    }
    assert "HTTP 404" in reasons["BTCUSDT-15m-2025-03.zip"]
    assert "does not match its CHECKSUM" in reasons["BTCUSDT-15m-2025-07.zip"]
    # A cut-off download is caught before unzipping: its digest is not the CHECKSUM's.
    assert "does not match its CHECKSUM" in reasons["ETHUSDT-15m-2025-11.zip"]
    # The half-empty daily file is used, and REST gives the rows it lacks.
    by_source = {c.open_ms: c.source for c in fast[1]}
    day = ArchiveFile.of("ETHUSDT", "15m", "2026-01-10")
    sources = {by_source[t] for t in range(day.start_ms, day.end_ms, Interval.M15.ms)}
    assert sources == {Source.ARCHIVE, Source.REST}
    assert report.rest_ranges == 4


def test_a_day_not_published_yet_comes_from_rest(make_simulator: MakeSimulator) -> None:
    # 03:00 the next morning: yesterday's daily file lands only at 06:00.
    server = make_simulator(clock=SimClock.fixed(ms("2026-01-15T03:00:00")))
    requests = [("BTCUSDT", "15m", ms("2026-01-13T00:00:00"), END)]
    fast, slow, report, _ = both(server, requests)
    assert rows(fast[0]) == rows(slow[0]) and len(fast[0]) == 2 * 96
    assert [f["file"] for f in report.fallbacks] == ["BTCUSDT-15m-2026-01-14.zip"]
    assert {c.source for c in fast[0][:96]} == {Source.ARCHIVE}
    assert {c.source for c in fast[0][96:]} == {Source.REST}


def test_rows_keep_exact_text_and_read_microseconds_as_milliseconds() -> None:
    import io

    from cryptobot_core.exchange.archive import ArchiveMiss, parse_rows

    file = ArchiveFile.of("BTCUSDT", "1m", "2025-01")
    micros = "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.41430850,1313,3.93260000,368003.68810010,0\n"
    (row,) = parse_rows(file, io.StringIO(micros))
    assert row[:3] == [1_735_689_600_000, "93576.00000000", "93610.93000000"]
    assert row[6] == 1_735_689_659_999 and row[8] == 1313 and row[10] == "368003.68810010"
    for garbage in ("not,a,kline\n", "1735689600000,abc\n", "[1]\n"):
        with pytest.raises(ArchiveMiss, match="not a kline row"):
            list(parse_rows(file, io.StringIO(garbage)))
