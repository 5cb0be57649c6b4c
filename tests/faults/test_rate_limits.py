"""A 418 ban seen by one process is respected by every process: 0 requests until it ends.

Real simulator over HTTP, real store. One client meets the ban (Retry-After 600 s); a
second process (a fresh interpreter, as a repair run or a sensor would be) then calls the
exchange through ``BinanceClient.from_settings`` and must refuse without sending anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from cryptobot_core.errors import IPBannedError
from cryptobot_core.exchange.rest import BinanceClient
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimulatorServer
from tests.core.stream.conftest import subprocess_env

OTHER_PROCESS = """
from cryptobot_core.errors import IPBannedError
from cryptobot_core.exchange.rest import BinanceClient
from cryptobot_core.settings import load_settings

with BinanceClient.from_settings(load_settings()) as client:
    for call in (client.server_time_ms, lambda: client.klines("BTCUSDT", "1m", 0, 60_000)):
        try:
            call()
            print("CALLED")
        except IPBannedError as exc:
            print("REFUSED", exc)
"""


def test_a_ban_met_by_one_process_stops_every_process(
    simulator: SimulatorServer, settings: Settings, mongo_db: Any
) -> None:
    cfg = settings.model_copy(update={"sim_port": simulator.port})
    simulator.faults.ban_ip(600)
    with BinanceClient.from_settings(cfg) as client, pytest.raises(IPBannedError):
        client.server_time_ms()
    record = mongo_db["exchange_bans"].find_one({})
    assert record is not None and "418" in record["reason"]

    before = simulator.stats.snapshot()["requests"]
    env = {**os.environ, **subprocess_env(cfg)}
    out = subprocess.run(  # from the test's own folder: no stray .env is read
        [sys.executable, "-c", OTHER_PROCESS], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("REFUSED") for line in lines), out.stdout
    assert "banned this IP until" in lines[0] and "every caller waits" in lines[0]
    assert simulator.stats.snapshot()["requests"] == before  # not one request during the ban
