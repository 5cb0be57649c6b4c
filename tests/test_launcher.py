"""The stack supervisor: pure decisions, exchange resolution over real HTTP, and `cryptobot up`
started as a real subprocess (ports in use, restarts, clean shutdown with nothing left behind).
"""

from __future__ import annotations

import contextlib
import http.server
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cryptobot_core import launcher, services
from cryptobot_core.cli import simulate as simulate_cli
from cryptobot_core.errors import ServiceError
from cryptobot_core.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
CRYPTOBOT = Path(sys.executable).with_name("cryptobot")
MARKER_VAR = "CRYPTOBOT_TEST_LAUNCHER_MARKER"
# The simulator command comes from its own issue; until it takes --port, run the stack
# against "binance" (nothing to start) so the rest of the stack is still tested.
SIMULATOR_READY = "port" in inspect.signature(simulate_cli.simulate).parameters


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CRYPTOBOT_* from the caller and no .env: settings are only what a test sets."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- pure decisions


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("bash: java: command not found", None),
    ],
)
def test_parse_java_version(text: str, major: int | None) -> None:
    assert launcher.parse_java_version(text) == major


def test_java_on_this_machine_is_detected() -> None:
    if not services.java_available():
        pytest.skip("no java on this machine")
    version = launcher.java_major_version()
    assert version is not None and version >= 8


def test_missing_or_old_java_fails_clearly_unless_allowed(clean_env: Path) -> None:
    for version in (None, 11):
        with pytest.raises(ServiceError) as err:
            launcher.check_java(load_settings(), version)
        message = str(err.value)
        assert "PySpark" in message and "Java 17+" in message
        assert "CRYPTOBOT_REQUIRE_JAVA=false" in message
    warning = launcher.check_java(load_settings(require_java=False), None)
    assert warning is not None and "no Java was found" in warning
    assert launcher.check_java(load_settings(), 17) is None


def test_settings_env_round_trips_through_a_child_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = launcher.stack_settings(
        load_settings(
            exchange="sim",
            symbols="BTCUSDT,SOLUSDT",
            history_start_date="2024-01-02",
            sim_speed=60.0,
            api_port=8123,
            dashboard_port=8600,
            exchange_fallback_reason="Binance did not answer",
        ),
    )
    env = launcher.settings_env(original)
    assert env["CRYPTOBOT_SYMBOLS"] == "BTCUSDT,SOLUSDT"
    assert env["CRYPTOBOT_MONGO_URI"] == original.effective_mongo_uri
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


def test_stack_settings_follow_the_configured_ports(clean_env: Path) -> None:
    settings = launcher.stack_settings(
        load_settings(api_port=8111, dashboard_port=8622, dagster_port=3111, data_dir="rel/dir")
    )
    assert settings.api_url == "http://127.0.0.1:8111"
    assert settings.dagster_url == "http://127.0.0.1:3111"
    assert "http://localhost:8622" in settings.api_cors_origins
    assert settings.data_dir.is_absolute() and settings.data_dir == clean_env / "rel" / "dir"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"


def test_plan_starts_only_what_is_not_configured(clean_env: Path) -> None:
    sim = launcher.plan(load_settings(exchange="sim"))
    names = [spec.name for spec in sim]
    assert names[:4] == ["store", "broker", "simulator", "dagster"]
    assert [spec.port for spec in sim[:4]] == [27117, 19092, 9443, 3000]
    external = launcher.plan(
        load_settings(
            exchange="binance",
            mongo_uri="mongodb://db:27017",
            kafka_bootstrap_servers="k:9092",
        )
    )
    assert [spec.name for spec in external][:1] == ["dagster"]
    skipped = launcher.plan(load_settings(exchange="sim"), skip=["dagster", "simulator"])
    assert "dagster" not in {s.name for s in skipped}
    with pytest.raises(ServiceError, match="allowed: store, broker"):
        launcher.plan(load_settings(exchange="sim"), skip=["mongo"])
    with pytest.raises(ServiceError, match="resolve_exchange"):
        launcher.plan(load_settings(exchange="auto"))


def test_dev_dagster_yaml_is_a_valid_instance_with_queue_and_pools(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    launcher.install_dagster_home(home)
    code = (
        "import dagster as dg; i = dg.DagsterInstance.get(); c = i.get_concurrency_config();"
        "print(type(i.run_coordinator).__name__, c.run_queue_config.max_concurrent_runs,"
        " c.pool_config.default_pool_limit)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["QueuedRunCoordinator", "8", "2"]


# ---------------------------------------------------------------- exchange resolution


class _PingHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"{}" if self.path == "/api/v3/ping" else b'{"code":-1,"msg":"no"}'
        self.send_response(self.status if self.path == "/api/v3/ping" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[tuple[str, type[_PingHandler]]]:
    """A real HTTP server answering /api/v3/ping with a settable status."""
    handler = type("Handler", (_PingHandler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_auto_uses_binance_when_ping_answers(
    clean_env: Path, ping_server: tuple[str, type[_PingHandler]]
) -> None:
    url, _ = ping_server
    resolved = launcher.resolve_exchange(load_settings(exchange="auto", binance_rest_url=url))
    assert resolved.exchange == "binance"
    assert resolved.exchange_fallback_reason is None
    assert resolved.database == "cryptobot"


def test_auto_falls_back_to_the_simulator_loudly(
    clean_env: Path, ping_server: tuple[str, type[_PingHandler]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = ping_server
    handler.status = 503
    resolved = launcher.resolve_exchange(load_settings(exchange="auto", binance_rest_url=url))
    assert resolved.exchange == "sim" and resolved.database == "cryptobot_sim"
    assert resolved.exchange_fallback_reason is not None
    assert "HTTP 503" in resolved.exchange_fallback_reason
    assert "USING THE BUILT-IN SIMULATOR" in caplog.text

    closed = f"http://127.0.0.1:{services.free_port()}"
    resolved = launcher.resolve_exchange(load_settings(exchange="auto", binance_rest_url=closed))
    assert resolved.exchange == "sim"
    assert "did not answer" in (resolved.exchange_fallback_reason or "")


def test_explicit_exchange_is_never_probed(clean_env: Path) -> None:
    closed = f"http://127.0.0.1:{services.free_port()}"
    for choice in ("sim", "binance"):
        resolved = launcher.resolve_exchange(
            load_settings(exchange=choice, binance_rest_url=closed)
        )
        assert resolved.exchange == choice and resolved.exchange_fallback_reason is None


def test_redact_hides_passwords() -> None:
    assert launcher.redact("mongodb://app:s3cret@db:27017/x") == "mongodb://app:***@db:27017/x"
    assert launcher.redact("mongodb://db:27017") == "mongodb://db:27017"


# ---------------------------------------------------------------- `cryptobot up` for real


def _stack_env(tmp_path: Path, marker: str, exchange: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")}
    ports = {
        "MONGO_PORT": services.free_port(),
        "KAFKA_PORT": services.free_port(),
        "SIM_PORT": services.free_port(),
        "DAGSTER_PORT": services.free_port(),
        "API_PORT": services.free_port(),
        "DASHBOARD_PORT": services.free_port(),
    }
    env.update({f"CRYPTOBOT_{k}": str(v) for k, v in ports.items()})
    env.update(
        {
            "CRYPTOBOT_DATA_DIR": str(tmp_path / ".cryptobot"),
            "CRYPTOBOT_EXCHANGE": exchange,
            # Never reached: "binance" is not probed, and nothing in these tests needs market data.
            "CRYPTOBOT_BINANCE_REST_URL": f"http://127.0.0.1:{services.free_port()}",
            "CRYPTOBOT_BINANCE_WS_URL": f"ws://127.0.0.1:{services.free_port()}",
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
        block = self.output.split("CryptoBot is up", 1)[1].split("Logs:", 1)[0]
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
    details = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
        for pid in left
        if Path(f"/proc/{pid}").exists()
    }
    assert not left, f"processes left behind: {details}\n{up.output}"


def test_port_in_use_fails_naming_the_service_and_its_log(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "binance")
    busy = socket.socket()
    busy.bind(("127.0.0.1", int(env["CRYPTOBOT_KAFKA_PORT"])))
    busy.listen()
    up = UpProcess(tmp_path, env, "--skip", "dagster", "--skip", "api", "--skip", "dashboard")
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


def test_bad_setting_fails_before_starting_anything(tmp_path: Path) -> None:
    env = _stack_env(tmp_path, uuid.uuid4().hex, "kraken")
    out = subprocess.run(
        [str(CRYPTOBOT), "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "CRYPTOBOT_EXCHANGE" in out.stderr and "'auto', 'sim' or 'binance'" in out.stderr
    assert "Traceback" not in out.stderr


def test_dead_child_is_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "sim" if SIMULATOR_READY else "binance")
    up = UpProcess(tmp_path, env, "--skip", "dagster", "--skip", "api", "--skip", "dashboard")
    try:
        up.wait_until("CryptoBot is up", timeout=90)
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

        broker_pids = {
            pid
            for pid in _marked_pids(marker)
            if b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()
        }
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
        # The store's data stays on disk for the next start.
        assert any((tmp_path / ".cryptobot" / "mongo").iterdir())
    finally:
        up.close()
        _kill_marked(marker)


@pytest.mark.slow
def test_cryptobot_up_serves_every_url_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    exchange = "sim" if SIMULATOR_READY else "binance"
    env = _stack_env(tmp_path, marker, exchange)
    up = UpProcess(tmp_path, env)
    try:
        up.wait_until("CryptoBot is up", timeout=300)
        urls = up.urls()
        titles = set(urls)
        assert {
            "document store (SecantusDB)",
            "broker (Tansu)",
            "Dagster (webserver + daemon)",
        } <= titles
        if exchange == "sim":
            assert "exchange simulator" in titles
            assert httpx.get(f"{urls['exchange simulator']}/api/v3/ping", timeout=10).json() == {}
        assert services.mongo_ping(urls["document store (SecantusDB)"], timeout_ms=5000)
        host, port = urls["broker (Tansu)"].rsplit(":", 1)
        assert services.port_open(int(port), host)
        dagster = httpx.get(f"{urls['Dagster (webserver + daemon)']}/server_info", timeout=10)
        assert dagster.status_code == 200 and "dagster_webserver_version" in dagster.json()
        if launcher.api_available():
            docs = urls["API (FastAPI)"]
            assert httpx.get(docs.removesuffix("/docs") + "/health", timeout=10).status_code == 200
        if launcher.dashboard_script().exists():
            dash = urls["dashboard (Streamlit)"]
            assert httpx.get(f"{dash}/_stcore/health", timeout=10).text == "ok"
        for name in ("store", "broker", "dagster"):
            assert (tmp_path / ".cryptobot" / "logs" / f"{name}.log").exists()
        assert (tmp_path / ".cryptobot" / "dagster" / "dagster.yaml").exists()
        running = _marked_pids(marker)
        assert len(running) > 4  # dagster dev alone spawns a webserver, daemon and code server

        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=90) == 0, up.output
        _assert_nothing_left(marker, up)
        for url in urls.values():
            if url.startswith("http://"):
                assert not services.port_open(int(url.rsplit(":", 1)[1].split("/")[0]))
    finally:
        up.close()
        _kill_marked(marker)


def test_a_child_that_keeps_dying_stops_the_stack_with_its_log(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = _stack_env(tmp_path, marker, "binance")
    env["CRYPTOBOT_MAX_RESTARTS"] = "0"
    up = UpProcess(tmp_path, env, "--skip", "dagster", "--skip", "api", "--skip", "dashboard")
    try:
        up.wait_until("CryptoBot is up", timeout=90)
        store = {
            pid
            for pid in _marked_pids(marker)
            if b"secantus" in Path(f"/proc/{pid}/cmdline").read_bytes()
        }
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
