"""`cryptobot up` as a real subprocess: ports in use, bad settings, restarts, a clean shutdown
with nothing left behind, and a second terminal that uses the running stack."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from dotenv import dotenv_values
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from cryptobot_core import services
from cryptobot_core.store import HISTORICAL_15M

CRYPTOBOT = Path(sys.executable).with_name("cryptobot")
MARKER_VAR = "CRYPTOBOT_TEST_LAUNCHER_MARKER"
ONLY_STORE_AND_BROKER = ("--skip", "dagster", "--skip", "api", "--skip", "dashboard")


def _bare_env() -> dict[str, str]:
    """This process's environment without any CryptoBot setting."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRYPTOBOT_") or k.startswith("CRYPTOBOT_TEST_")
    }


def _stack_env(tmp_path: Path, marker: str, exchange: str) -> dict[str, str]:
    env = _bare_env()
    names = ("MONGO", "KAFKA", "SIM", "DAGSTER", "API", "DASHBOARD")
    *ports, rest_port, ws_port = services.free_ports(len(names) + 2)
    for name, port in zip(names, ports, strict=True):
        env[f"CRYPTOBOT_{name}_PORT"] = str(port)
    env.update(
        {
            "CRYPTOBOT_EXCHANGE": exchange,
            # Never reached: "binance" is not probed, and "auto" must fall back.
            "CRYPTOBOT_BINANCE_REST_URL": f"http://127.0.0.1:{rest_port}",
            "CRYPTOBOT_BINANCE_WS_URL": f"ws://127.0.0.1:{ws_port}",
            MARKER_VAR: marker,
        }
    )
    return env


def _marked_pids(marker: str) -> set[int]:
    """Every live process whose environment carries the marker (the stack and its children)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                if state != "Z":
                    found.add(int(entry.name))
        except OSError:
            continue
    return found


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


class UpProcess:
    """`cryptobot up` as a subprocess in its own session, its output collected in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.out_path = tmp_path / "up.out"
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(CRYPTOBOT), "up", *args],
            cwd=tmp_path,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_until(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.proc.poll() is not None:
                pytest.fail(f"`cryptobot up` exited with {self.proc.returncode}:\n{self.output}")
            time.sleep(0.5)
        pytest.fail(f"no {text!r} after {timeout:.0f}s:\n{self.output}")

    def urls(self) -> dict[str, str]:
        """Title -> URL as printed in the "is up" block."""
        block = self.output.split("CryptoBot is up", 1)[1].split("Commands in other", 1)[0]
        found = {}
        for line in block.splitlines()[1:]:
            match = re.match(r"^  (\S.*?)\s{2,}(\S+)$", line)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.out.close()


def _kill_marked(marker: str) -> None:
    for pid in _marked_pids(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _assert_nothing_left(marker: str, up: UpProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _marked_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _marked_pids(marker)
    details = {pid: _cmdline(pid)[:120] for pid in left if Path(f"/proc/{pid}").exists()}
    assert not left, f"processes left behind: {details}\n{up.output}"


# ---------------------------------------------------------------- failing early and clearly


def test_port_in_use_fails_naming_the_service_and_its_log(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "binance")
    busy = socket.socket()
    busy.bind(("127.0.0.1", int(env["CRYPTOBOT_KAFKA_PORT"])))
    busy.listen()
    up = UpProcess(tmp_path, env, *ONLY_STORE_AND_BROKER)
    try:
        assert up.proc.wait(timeout=60) == 2
        output = up.output
        assert "broker (Tansu) cannot start" in output
        assert f"port {env['CRYPTOBOT_KAFKA_PORT']} is already in use" in output
        assert "CRYPTOBOT_KAFKA_PORT" in output
        assert str(tmp_path / ".cryptobot" / "logs" / "broker.log") in output
        assert "Traceback" not in output
        # Checked before anything started: the store was never launched.
        assert not (tmp_path / ".cryptobot" / "logs" / "store.log").exists()
        _assert_nothing_left(marker, up)
    finally:
        busy.close()
        up.close()
        _kill_marked(marker)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(CRYPTOBOT), "up"], id="up"),
        pytest.param([str(CRYPTOBOT), "backfill", "--days", "1"], id="backfill"),
        pytest.param([str(CRYPTOBOT), "stream", "repair"], id="stream"),
        pytest.param(
            [sys.executable, "-m", "uvicorn", "cryptobot_api.main:app", "--port", "0"],
            id="api",
        ),
    ],
)
def test_a_bad_setting_is_one_line_without_traceback(tmp_path: Path, command: list[str]) -> None:
    env = {**_bare_env(), "CRYPTOBOT_EXCHANGE": "kraken"}
    out = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if "CRYPTOBOT_EXCHANGE" in line]
    assert len(errors) == 1, out.stderr
    assert "'auto', 'sim' or 'binance'" in errors[0] and "(got 'kraken')" in errors[0]
    assert "Traceback" not in out.stderr + out.stdout


# ---------------------------------------------------------------- supervision


def test_dead_child_is_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "sim")
    up = UpProcess(tmp_path, env, *ONLY_STORE_AND_BROKER)
    try:
        up.wait_until("CryptoBot is up", timeout=120)
        kafka_port = int(env["CRYPTOBOT_KAFKA_PORT"])
        assert services.mongo_ping(
            f"mongodb://127.0.0.1:{env['CRYPTOBOT_MONGO_PORT']}/?directConnection=true",
            timeout_ms=5000,
        )
        assert services.port_open(kafka_port)
        # A second launcher on the same data dir would share the store's files: refused.
        second = subprocess.run(
            [str(CRYPTOBOT), "up"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another `cryptobot up` (pid {up.proc.pid})" in second.stderr

        broker_pids = {pid for pid in _marked_pids(marker) if b"tansu" in _cmdline(pid)}
        assert len(broker_pids) == 1
        os.kill(broker_pids.pop(), signal.SIGKILL)
        up.wait_until("broker (Tansu) is healthy again", timeout=60)
        assert "broker (Tansu) exited unexpectedly" in up.output
        assert services.port_open(kafka_port)

        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0, up.output
        assert "all services stopped" in up.output
        _assert_nothing_left(marker, up)
        assert not services.port_open(kafka_port)
        # The store's data stays on disk for the next start; the stack file is gone.
        assert any((tmp_path / ".cryptobot" / "mongo").iterdir())
        assert not (tmp_path / ".cryptobot" / "stack.env").exists()
    finally:
        up.close()
        _kill_marked(marker)


def test_a_child_that_keeps_dying_stops_the_stack_with_its_log(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "binance")
    env["CRYPTOBOT_MAX_RESTARTS"] = "0"
    up = UpProcess(tmp_path, env, *ONLY_STORE_AND_BROKER)
    try:
        up.wait_until("CryptoBot is up", timeout=120)
        store = {pid for pid in _marked_pids(marker) if b"secantus" in _cmdline(pid)}
        assert len(store) == 1
        os.kill(store.pop(), signal.SIGKILL)
        assert up.proc.wait(timeout=60) == 2
        output = up.output
        assert "document store (SecantusDB) died" in output
        assert "CRYPTOBOT_MAX_RESTARTS=0" in output
        assert str(tmp_path / ".cryptobot" / "logs" / "store.log") in output
        assert "Traceback" not in output
        _assert_nothing_left(marker, up)
    finally:
        up.close()
        _kill_marked(marker)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cryptobot_up_serves_every_url_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "sim")
    env["CRYPTOBOT_HISTORY_DAYS"] = "2"  # the automatic catch-up fills yesterday quickly
    up = UpProcess(tmp_path, env)
    try:
        up.wait_until("CryptoBot is up", timeout=300)
        urls = up.urls()
        assert set(urls) == {
            "document store (SecantusDB)",
            "broker (Tansu)",
            "exchange simulator",
            "Dagster (webserver + daemon)",
            "API (FastAPI)",
            "dashboard (Streamlit)",
        }
        assert httpx.get(f"{urls['exchange simulator']}/api/v3/ping", timeout=10).json() == {}
        # The store's URL is shown without its password; the full one is in stack.env.
        shown = urls["document store (SecantusDB)"]
        assert shown.startswith("mongodb://cryptobot_app:***@127.0.0.1:")
        stack = dotenv_values(tmp_path / ".cryptobot" / "stack.env")
        assert services.mongo_ping(stack["CRYPTOBOT_MONGO_URI"] or "", timeout_ms=5000)
        assert not services.mongo_ping(shown, timeout_ms=2000)
        host, port = urls["broker (Tansu)"].rsplit(":", 1)
        assert services.port_open(int(port), host)
        dagster = httpx.get(f"{urls['Dagster (webserver + daemon)']}/server_info", timeout=10)
        assert dagster.status_code == 200 and "dagster_webserver_version" in dagster.json()
        docs = urls["API (FastAPI)"]
        assert httpx.get(docs.removesuffix("/docs") + "/health", timeout=10).status_code == 200
        dash = urls["dashboard (Streamlit)"]
        assert httpx.get(f"{dash}/_stcore/health", timeout=10).text == "ok"
        for name in ("store", "broker", "simulator", "dagster", "api", "dashboard"):
            assert (tmp_path / ".cryptobot" / "logs" / f"{name}.log").exists()
        assert (tmp_path / ".cryptobot" / "dagster" / "dagster.yaml").exists()
        running = _marked_pids(marker)
        assert len(running) > 4  # dagster dev alone spawns a webserver, daemon and code server

        # `cryptobot check` from another terminal, with no settings of its own: every
        # promise of the running stack holds once catch-up, features and the stream ran.
        checked = subprocess.run(
            [str(CRYPTOBOT), "check", "--wait", "480"],
            cwd=tmp_path,
            env={**_bare_env(), MARKER_VAR: marker},
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = checked.stdout.splitlines()
        assert checked.returncode == 0, f"{checked.stdout}\n{checked.stderr}\n{up.output[-3000:]}"
        assert sum(line.startswith("PASS") for line in lines) == 6, checked.stdout
        assert "all 6 checks passed" in checked.stdout and "Traceback" not in checked.stderr
        print(checked.stdout)  # with -s: how long the stack took to keep every promise

        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=90) == 0, up.output
        _assert_nothing_left(marker, up)
        for url in urls.values():
            if url.startswith("http://"):
                assert not services.port_open(int(url.rsplit(":", 1)[1].split("/")[0]))
        assert stack["CRYPTOBOT_MONGO_URI"] not in up.output
    finally:
        up.close()
        _kill_marked(marker)


# ---------------------------------------------------------------- one stack for every terminal


def _sim_klines(sim_url: str, symbol: str, start: datetime, end: datetime) -> list[list[Any]]:
    params: dict[str, Any] = {
        "symbol": symbol,
        "interval": "15m",
        "startTime": int(start.timestamp() * 1000),
        "endTime": int(end.timestamp() * 1000) - 1,
        "limit": 1000,
    }
    return list(httpx.get(f"{sim_url}/api/v3/klines", params=params, timeout=30).json())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_second_terminal_backfills_into_the_running_stack(tmp_path: Path) -> None:
    """The README's `cryptobot backfill` in another terminal, with no CRYPTOBOT_* settings,
    while `cryptobot up` runs on the simulator it fell back to."""
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "auto")  # Binance does not answer: the simulator
    env["CRYPTOBOT_HISTORY_DAYS"] = "2"  # keeps the automatic catch-up as small as the backfill
    env["CRYPTOBOT_STREAM_SUPERVISOR_AUTOSTART"] = "false"
    up = UpProcess(tmp_path, env, "--skip", "dashboard")
    try:
        up.wait_until("CryptoBot is up", timeout=400)
        assert "USING THE BUILT-IN SIMULATOR" in up.output

        second = subprocess.run(
            [str(CRYPTOBOT), "backfill", "--days", "2", "--symbols", "BTCUSDT,ETHUSDT"],
            cwd=tmp_path,
            env={**_bare_env(), MARKER_VAR: marker},
            capture_output=True,
            text=True,
            timeout=600,
        )
        dagster_log = (tmp_path / ".cryptobot" / "logs" / "dagster.log").read_text()[-3000:]
        assert second.returncode == 0, f"{second.stdout}\n{second.stderr}\n{dagster_log}"
        assert "done: 4 partitions materialized" in second.stdout
        assert "Traceback" not in second.stderr

        stack = dotenv_values(tmp_path / ".cryptobot" / "stack.env")
        sim_url = f"http://127.0.0.1:{env['CRYPTOBOT_SIM_PORT']}"
        api_url = f"http://127.0.0.1:{env['CRYPTOBOT_API_PORT']}"
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = today - timedelta(days=2), today
        reader: MongoClient[dict[str, Any]] = MongoClient(
            stack["CRYPTOBOT_MONGO_READ_URI"], tz_aware=True, serverSelectionTimeoutMS=5000
        )
        try:
            coll = reader["cryptobot_sim"][HISTORICAL_15M]
            for symbol in ("BTCUSDT", "ETHUSDT"):
                expected = _sim_klines(sim_url, symbol, start, end)
                assert len(expected) == 2 * 96
                stored = list(coll.find({"symbol": symbol}).sort("open_time", 1))
                assert [
                    [
                        int(d["open_time"].timestamp() * 1000),
                        *(str(d[k]) for k in ("open", "high", "low", "close", "volume")),
                    ]
                    for d in stored
                ] == [row[:6] for row in expected]
                # The API reads the same candles as the read-only user.
                body = httpx.get(
                    f"{api_url}/candles/{symbol}",
                    params={"interval": "15m", "start": start.isoformat(), "limit": 1000},
                    timeout=30,
                ).json()
                assert [(c["open"], c["close"]) for c in body["candles"]] == [
                    (row[1], row[4]) for row in expected
                ]
                assert Decimal(body["candles"][0]["volume"]) == Decimal(expected[0][5])
        finally:
            reader.close()

        # The API's own credentials cannot write.
        api_pid = next(p for p in _marked_pids(marker) if b"cryptobot_api.main" in _cmdline(p))
        api_uri = _environ(api_pid)["CRYPTOBOT_MONGO_URI"]
        assert api_uri == stack["CRYPTOBOT_MONGO_READ_URI"] != stack["CRYPTOBOT_MONGO_URI"]
        api_client: MongoClient[dict[str, Any]] = MongoClient(
            api_uri, serverSelectionTimeoutMS=5000
        )
        try:
            with pytest.raises(OperationFailure, match="not authorized"):
                api_client["cryptobot_sim"][HISTORICAL_15M].insert_one({"symbol": "X"})
        finally:
            api_client.close()

        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=90) == 0, up.output
        _assert_nothing_left(marker, up)
    finally:
        up.close()
        _kill_marked(marker)
