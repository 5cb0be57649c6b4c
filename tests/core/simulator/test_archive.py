"""Archive files (data.binance.vision layout) over real HTTP: content equals REST, faults."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator import SimClock, SimulatorServer, archive
from cryptobot_core.simulator.archive import ArchiveFile, csv_bytes, parse_archive_path
from tests.fixtures.simulator import SIM_NOW_MS, MakeSimulator

NOW = SIM_NOW_MS  # 2026-01-15T12:34:56Z
DAY = 86_400_000


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def fetch(server: SimulatorServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}/{path}", timeout=30)


def archive_rows(server: SimulatorServer, file: ArchiveFile) -> tuple[list[list[Any]], bytes]:
    """The file's CSV rows, times normalised to ms like REST, and the zip bytes."""
    r = fetch(server, file.path)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip", r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.namelist() == [file.name.replace(".zip", ".csv")]
        text = zf.read(zf.namelist()[0]).decode()
    rows = []
    for raw in csv.reader(io.StringIO(text)):
        assert len(raw) == 12 and raw[11] == "0"
        open_t, close_t = int(raw[0]), int(raw[6])
        if file.micros:  # from 2025 on, times are microseconds; close ends in 999
            assert open_t % 1000 == 0 and close_t % 1000 == 999
            open_t, close_t = open_t // 1000, close_t // 1000
        rows.append([open_t, *raw[1:6], close_t, raw[7], int(raw[8]), raw[9], raw[10], raw[11]])
    return rows, r.content


def rest_rows(server: SimulatorServer, symbol: str, iv: str, start: int, end: int) -> list[Any]:
    """Every REST row opening in [start, end), paged over HTTP like a client."""
    rows: list[Any] = []
    while True:
        page = httpx.get(
            f"{server.url}/api/v3/klines",
            params={
                "symbol": symbol,
                "interval": iv,
                "startTime": start,
                "endTime": end - 1,
                "limit": 1000,
            },
        ).json()
        rows += page
        if len(page) < 1000:
            return rows
        start = page[-1][0] + 1


@pytest.mark.parametrize(
    ("symbol", "interval", "period"),
    [
        ("BTCUSDT", "1m", "2025-03"),  # a whole month of minutes, microseconds
        ("ETHUSDT", "1m", "2024-02"),  # a leap-year month, milliseconds
        ("XRPUSDT", "1h", "2025-12"),
        ("SOLUSDT", "1m", "2026-01-14"),  # yesterday's daily file
        ("DOGEUSDT", "15m", "2024-12-31"),
        ("BNBUSDT", "1w", "2025-06"),
        ("BNBUSDT", "1mo", "2025-06"),
    ],
)
def test_archive_rows_equal_rest_bit_for_bit(
    simulator: SimulatorServer, symbol: str, interval: str, period: str
) -> None:
    file = ArchiveFile.of(symbol, interval, period)
    rows, _ = archive_rows(simulator, file)
    expected = rest_rows(simulator, symbol, file.interval.value, file.start_ms, file.end_ms)
    assert rows == expected and len(rows) > 0
    if interval == "1m" and not file.daily:
        days = (file.end_ms - file.start_ms) // DAY
        assert len(rows) == days * 1440  # 44,640 for a 31-day month


def test_checksum_is_sha256sum_output_of_the_zip(simulator: SimulatorServer) -> None:
    file = ArchiveFile.of("BTCUSDT", "1h", "2025-11")
    _, content = archive_rows(simulator, file)
    r = fetch(simulator, file.path + ".CHECKSUM")
    assert r.status_code == 200
    assert r.text == f"{hashlib.sha256(content).hexdigest()}  BTCUSDT-1h-2025-11.zip"
    # The same bytes on every request (a fixed zip timestamp: the publication time).
    assert fetch(simulator, file.path).content == content
    assert fetch(simulator, file.path).headers["ETag"] == f'"{hashlib.md5(content).hexdigest()}"'
    assert fetch(simulator, file.path).headers["Last-Modified"] == "Mon, 01 Dec 2025 06:00:00 GMT"


def test_files_appear_after_their_period_plus_the_delay(make_simulator: MakeSimulator) -> None:
    # 2026-01-15 05:59:59: yesterday's daily file lands at 06:00 (6 h after midnight).
    sim = make_simulator(clock=SimClock.fixed(ms("2026-01-15T05:59:59")))
    daily = ArchiveFile.of("BTCUSDT", "1m", "2026-01-14").path
    monthly = ArchiveFile.of("BTCUSDT", "1m", "2025-12").path
    current = ArchiveFile.of("BTCUSDT", "1m", "2026-01").path
    assert fetch(sim, daily).status_code == 404
    assert fetch(sim, daily + ".CHECKSUM").status_code == 404
    assert fetch(sim, monthly).status_code == 200
    sim.clock.advance(1_000)
    assert fetch(sim, daily).status_code == 200
    assert fetch(sim, current).status_code == 404  # a month only once it has closed
    assert fetch(sim, ArchiveFile.of("BTCUSDT", "1m", "2026-01-15").path).status_code == 404
    # Weekly candles: January's file waits for its last week (opening Monday 2026-01-26),
    # which closes at the end of 2026-02-01.
    sim.clock.set(ms("2026-02-01T06:00:00"))
    assert fetch(sim, ArchiveFile.of("BTCUSDT", "1w", "2026-01").path).status_code == 404
    sim.clock.set(ms("2026-02-02T06:00:00"))
    assert fetch(sim, ArchiveFile.of("BTCUSDT", "1w", "2026-01").path).status_code == 200
    fresh = make_simulator(clock=SimClock.fixed(ms("2026-01-15T00:00:00")), archive_delay_s=0)
    assert fetch(fresh, daily).status_code == 200


def test_missing_files_answer_like_s3(simulator: SimulatorServer) -> None:
    for path in [
        "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2017-01-01.zip",  # before the listing
        "data/spot/monthly/klines/LUNAUSDT/1m/LUNAUSDT-1m-2023-01.zip",  # after the delisting
        "data/spot/monthly/klines/NOPEUSDT/1m/NOPEUSDT-1m-2025-01.zip",  # unknown symbol
        "data/spot/daily/klines/BTCUSDT/1w/BTCUSDT-1w-2025-01-06.zip",  # no daily weeks
        "data/spot/monthly/klines/BTCUSDT/7m/BTCUSDT-7m-2025-01.zip",  # no such interval
        "data/spot/monthly/klines/BTCUSDT/1m/ETHUSDT-1m-2025-01.zip",  # name vs folder
        "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-02-30.zip",  # no such day
        "data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1M-2025-01.zip",  # Binance spells it 1mo
        "data/spot/monthly/trades/BTCUSDT/BTCUSDT-trades-2025-01.zip",
    ]:
        r = fetch(simulator, path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("application/xml")
        assert "<Code>NoSuchKey</Code>" in r.text and f"<Key>{path}</Key>" in r.text
    luna = ArchiveFile.of("LUNAUSDT", "1d", "2022-05")
    rows, _ = archive_rows(simulator, luna)
    assert rows[-1][0] == luna.start_ms + 11 * DAY  # delisted on the 13th: the 12th is last
    head = httpx.head(f"{simulator.url}/{ArchiveFile.of('BTCUSDT', '1d', '2025-01').path}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0
    assert simulator.stats.archive_responses[404] == 9


def test_outage_minutes_are_missing_from_archives_as_from_rest(
    make_simulator: MakeSimulator,
) -> None:
    start = ms("2025-07-04T10:03:00")
    sim = make_simulator(outages=[(start, start + 50 * MINUTE_MS)])
    file = ArchiveFile.of("ETHUSDT", "1m", "2025-07-04")
    rows, _ = archive_rows(sim, file)
    opens = {r[0] for r in rows}
    assert len(rows) == 1440 - 50 and start not in opens and start - MINUTE_MS in opens
    assert rows == rest_rows(sim, "ETHUSDT", "1m", file.start_ms, file.end_ms)
    hourly, _ = archive_rows(sim, ArchiveFile.of("ETHUSDT", "1h", "2025-07"))
    assert hourly == rest_rows(sim, "ETHUSDT", "1h", ms("2025-07-01"), ms("2025-08-01"))


def test_targeted_archive_faults(simulator: SimulatorServer) -> None:
    faults = simulator.faults
    good = ArchiveFile.of("BTCUSDT", "1h", "2025-09")
    _, full = archive_rows(simulator, good)
    full_sum = hashlib.sha256(full).hexdigest()
    missing = faults.break_archive("missing", "BTCUSDT", "1h", "2025-09")
    assert fetch(simulator, good.path).status_code == 404
    assert fetch(simulator, good.path + ".CHECKSUM").status_code == 404
    assert fetch(simulator, ArchiveFile.of("BTCUSDT", "1h", "2025-10").path).status_code == 200
    faults.repair_archive(missing)
    assert fetch(simulator, good.path).content == full

    faults.break_archive("bad_checksum", "BTCUSDT", "1h")
    stated = fetch(simulator, good.path + ".CHECKSUM").text
    assert stated.endswith("  BTCUSDT-1h-2025-09.zip") and len(stated.split()[0]) == 64
    assert stated.split()[0] != full_sum and fetch(simulator, good.path).content == full
    faults.repair_archive()

    faults.break_archive("truncated", period="2025-09")
    cut = fetch(simulator, good.path).content
    assert cut == full[: len(full) // 2]
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(cut)).read("BTCUSDT-1h-2025-09.csv")
    assert fetch(simulator, good.path + ".CHECKSUM").text.split()[0] == full_sum
    faults.repair_archive()

    faults.break_archive("partial", "BTCUSDT", "1h", "2025-09")
    rows, partial = archive_rows(simulator, good)
    assert len(rows) == 30 * 24 // 2
    assert fetch(simulator, good.path + ".CHECKSUM").text.split()[0] == (
        hashlib.sha256(partial).hexdigest()
    )
    faults.repair_archive()
    assert fetch(simulator, good.path).content == full
    with pytest.raises(ValueError, match="archive fault kind"):
        faults.break_archive("corrupt")
    with pytest.raises(ValueError, match="YYYY-MM"):
        faults.break_archive("missing", period="2025/09")


def test_archive_fault_rates_pick_the_same_files_every_time(simulator: SimulatorServer) -> None:
    simulator.faults.archive_missing_rate = 0.5
    paths = [ArchiveFile.of("ADAUSDT", "1d", f"2025-{m:02d}").path for m in range(1, 13)]
    first = [fetch(simulator, p).status_code for p in paths]
    assert first == [fetch(simulator, p).status_code for p in paths]
    assert 0 < first.count(404) < 12 and set(first) == {200, 404}
    simulator.faults.reset()
    simulator.faults.archive_error_rate = 1.0
    r = fetch(simulator, paths[0])
    assert r.status_code == 503 and "<Code>SlowDown</Code>" in r.text
    simulator.faults.archive_error_rate = 0.0
    assert fetch(simulator, paths[0]).status_code == 200


def test_archives_need_no_weight_and_ignore_rest_bans(simulator: SimulatorServer) -> None:
    simulator.faults.ban_ip(600)
    r = fetch(simulator, ArchiveFile.of("BTCUSDT", "1d", "2025-02").path)
    assert r.status_code == 200 and "X-MBX-USED-WEIGHT-1M" not in r.headers
    assert simulator.stats.requests == 0 and simulator.stats.archive_requests == 1


def test_one_second_daily_file_equals_rest(simulator: SimulatorServer) -> None:
    file = ArchiveFile.of("ETHUSDT", "1s", "2026-01-10")
    rows, _ = archive_rows(simulator, file)
    assert len(rows) == 86_400
    noon = file.start_ms + DAY // 2
    assert rows[43_200:44_200] == rest_rows(simulator, "ETHUSDT", "1s", noon, noon + 1_000_000)


def test_paths_parse_and_print_the_same() -> None:
    for path in [
        "data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2025-01.zip",
        "data/spot/daily/klines/ETHBTC/12h/ETHBTC-12h-2024-02-29.zip",
    ]:
        parsed = parse_archive_path(path)
        assert parsed is not None and parsed[0].path == path and parsed[1] is False
    parsed = parse_archive_path("/data/spot/daily/klines/A1B/1s/A1B-1s-2025-01-01.zip.CHECKSUM")
    assert parsed is not None and parsed[1] is True and parsed[0].interval is Interval.S1


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 2**52),
            st.lists(st.integers(0, 10**15), min_size=9, max_size=9),
        ),
        min_size=1,
        max_size=30,
    ),
    pd=st.integers(0, 8),
    qd=st.integers(0, 8),
)
def test_vectorised_csv_equals_plain_formatting(
    rows: list[tuple[int, list[int]]], pd: int, qd: int
) -> None:
    times = np.asarray([t for t, _ in rows], dtype=np.int64)
    values = np.asarray([v for _, v in rows], dtype=np.int64)

    def d(units: int, decimals: int) -> str:
        whole, frac = divmod(units, 10**decimals)
        return f"{whole}.{frac * 10 ** (8 - decimals):08d}"

    expected = "".join(
        f"{t},{d(v[0], pd)},{d(v[1], pd)},{d(v[2], pd)},{d(v[3], pd)},{d(v[4], qd)},{t + 59},"
        f"{d(v[5], 8)},{v[6]},{d(v[7], qd)},{d(v[8], 8)},0\n"
        for t, v in rows
    )
    assert csv_bytes(times, times + 59, values, pd, qd).decode() == expected
    # Written in blocks of rows, the bytes are the same.
    with patch.object(archive, "_BLOCK", 4):
        assert csv_bytes(times, times + 59, values, pd, qd).decode() == expected
