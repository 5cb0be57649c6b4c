"""Scale-out: 6 partitions, 3 consumer processes in one group; one is killed (-9) and another
added while records keep arriving.

The killed member's uncommitted records are read again by whoever inherits its partitions;
the stored window must still equal what was sent: every minute once, its newest version.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle
from tests.core.stream.conftest import (
    T0,
    committed,
    make_candle,
    send_raw,
    subprocess_env,
    wait_until,
)

PARTITIONS = 6
# Chosen so that Kafka's default partitioner (murmur2 of the key) gives every partition keys.
SYMBOLS = [
    "DOTUSDT",
    "LTCUSDT",
    "ADABTC",
    "LINKBTC",
    "BTCUSDT",
    "XRPUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "BNBBTC",
    "SOLBTC",
    "ETHUSDT",
    "TRXUSDT",
]
MINUTES = 60
CHUNKS = 12


def _records(expected: dict[tuple[str, int], Candle]) -> list[list[tuple[bytes, bytes]]]:
    """Per minute and symbol an open update, then the final; split into CHUNKS in order."""
    records: list[tuple[bytes, bytes]] = []
    for m in range(MINUTES):
        for i, symbol in enumerate(SYMBOLS):
            t = T0 + m * 60_000
            update = make_candle(symbol, t, closed=False, price="1.00", event_ms=t + 30_000)
            final = make_candle(symbol, t, price=f"{m + 2}.{i:02d}")
            records += [(symbol.encode(), encode_candle(update))]
            records += [(symbol.encode(), encode_candle(final))]
            expected[(symbol, t)] = final
    size = -(-len(records) // CHUNKS)
    return [records[i : i + size] for i in range(0, len(records), size)]


def _assignments(log: Path) -> list[set[int]]:
    """Every partition set the member was given, in order (kafka-python logs each one)."""
    found = re.findall(r"Setting newly assigned partitions \{(.*?)\} for group", log.read_text())
    return [{int(p) for p in re.findall(r"partition=(\d+)", line)} for line in found]


class Member:
    """One `python -m cryptobot_core.stream consume` process of the group."""

    def __init__(self, name: str, env: dict[str, str], tmp_path: Path) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cryptobot_core.stream", "consume"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def test_a_member_killed_and_another_added_mid_stream_loses_and_duplicates_nothing(
    stream_settings: Settings, mongo_db: Any, tmp_path: Path
) -> None:
    settings = stream_settings.model_copy(
        update={"kafka_partitions": PARTITIONS, "symbols": SYMBOLS}
    )
    expected: dict[tuple[str, int], Candle] = {}
    chunks = _records(expected)
    total = sum(len(c) for c in chunks)
    send_raw(settings, [])  # creates the topic with its partitions before anyone joins
    env = {**os.environ, **subprocess_env(settings)}
    members = [Member(f"consumer{i}", env, tmp_path) for i in range(3)]
    try:
        sent = 0
        send_raw(settings, chunks[0])
        sent += len(chunks[0])
        # All three are in the group and the first chunk is stored and committed.
        wait_until(lambda: sum(committed(settings).values()) == sent, 90, "first chunk committed")

        progress = {"sent": sent}

        def feed() -> None:
            for chunk in chunks[1:]:
                send_raw(settings, chunk)
                progress["sent"] += len(chunk)
                time.sleep(1.0)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        wait_until(lambda: progress["sent"] >= total // 3, 60, "a third sent")
        members[0].proc.send_signal(signal.SIGKILL)  # mid-stream, with uncommitted records
        members[0].proc.wait(10)
        wait_until(lambda: progress["sent"] >= 2 * total // 3, 60, "two thirds sent")
        members.append(Member("consumer3", env, tmp_path))  # joins: another rebalance
        feeder.join(120)
        assert progress["sent"] == total

        wait_until(
            lambda: sum(committed(settings).values()) == total, 180, "every record committed"
        )
        offsets = committed(settings)
        assert len(offsets) == PARTITIONS and all(offsets.values()), offsets

        store = CandleStore(mongo_db, STREAMING_1M)
        stored = {(c.symbol, c.open_ms): c for s in SYMBOLS for c in store.find(s)}
        assert mongo_db[STREAMING_1M].count_documents({}) == len(expected)  # 0 duplicated
        assert stored == expected  # 0 lost, values equal, the newest version of each minute
        survivors = members[1:]
        assert all(m.proc.poll() is None for m in survivors), [
            m.log_path.read_text()[-2000:] for m in survivors
        ]
        # The work was spread: the three first members split all six partitions between
        # them, and the member added later was given partitions too.
        first = [_assignments(m.log_path)[0] for m in members[:3]]
        assert all(first) and set().union(*first) == set(range(PARTITIONS)), first
        assert any(_assignments(members[3].log_path)), members[3].log_path.read_text()[-2000:]
    finally:
        for member in members:
            member.stop()
