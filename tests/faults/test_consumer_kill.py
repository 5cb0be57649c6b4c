"""The consumer killed (-9) exactly between a durable write and its offset commit.

A failpoint kills the consumer process right after the store acknowledged batch 3 and before
its offsets are committed. The restarted consumer must replay that batch (it reads again
from the last commit) and the stored window must equal what was sent: nothing lost,
nothing duplicated, the newest version of every minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import HEARTBEATS, STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle
from tests.core.stream.conftest import (
    T0,
    committed,
    make_candle,
    send_raw,
    subprocess_env,
    wait_until,
)

BATCH = 50
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_kill_between_write_and_commit_replays_the_batch_and_the_window_is_exact(
    stream_settings: Settings, mongo_db: Any, tmp_path: Path
) -> None:
    settings = stream_settings.model_copy(update={"kafka_partitions": 1, "symbols": SYMBOLS})
    expected: dict[tuple[str, int], Candle] = {}
    records: list[tuple[bytes | None, bytes]] = []
    for m in range(100):
        for s in SYMBOLS:
            t = T0 + m * 60_000
            records.append(
                (s.encode(), encode_candle(make_candle(s, t, closed=False, price="1.00")))
            )
            final = make_candle(s, t, price=f"{m + 2}.{len(s)}")
            records.append((s.encode(), encode_candle(final)))
            expected[(s, t)] = final
    send_raw(settings, records)
    argv = [sys.executable, "-m", "cryptobot_core.stream", "consume", "--max-records", str(BATCH)]
    env = {**os.environ, **subprocess_env(settings)}

    with open(tmp_path / "consumer1.log", "wb") as log1:
        first = subprocess.run(
            argv,
            env={**env, "CRYPTOBOT_FAILPOINTS": "consumer.after_write@3"},
            stdout=log1,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    assert first.returncode == -9, (tmp_path / "consumer1.log").read_text()[-2000:]
    at_kill = committed(settings)[0]
    coll = mongo_db[STREAMING_1M]
    written = coll.count_documents({"is_closed": True})
    # Batch 3 reached the store, its offsets did not reach the group.
    assert at_kill < len(records) and written * 2 > at_kill

    with open(tmp_path / "consumer2.log", "wb") as log2:
        second = subprocess.Popen(argv, env=env, stdout=log2, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: committed(settings)[0] == len(records), 90, "every record committed")
    finally:
        second.terminate()
        second.wait(30)
    beat = mongo_db[HEARTBEATS].find_one({"_id": "consumer"})
    # The restart read everything after the last commit, batch 3 included: a replay.
    assert beat["stats"]["messages"] == len(records) - at_kill

    store = CandleStore(mongo_db, STREAMING_1M)
    stored = {(c.symbol, c.open_ms): c for s in SYMBOLS for c in store.find(s)}
    assert coll.count_documents({}) == len(expected)
    assert stored == expected
