"""Child processes: start one in its own process group, probe its health, stop all of it.

Also the one reader of ``/proc`` (process state, parent, group, start time) and the small
network probes the launcher and the tests use (free ports, open ports, HTTP and MongoDB
pings).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx

from cryptobot_core.errors import ServiceError

# ---------------------------------------------------------------- network probes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now.

    All are held open until every one is chosen: asked one at a time, the kernel may hand
    back a port it just released, and two services would be told the same port.
    """
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def mongo_ping(uri: str, timeout_ms: int = 500) -> bool:
    """True when a MongoDB server at ``uri`` answers ping (with the URI's credentials, if any)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (empty if it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------- /proc


class ProcStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the launcher needs."""

    state: str
    parent: int
    group: int
    # Clock ticks after boot: with the pid it names one process, never a later one.
    started: int


Identity = tuple[int, int]
"""(pid, start time): unlike a bare pid, it never names a later, unrelated process."""


def proc_stat(pid: int) -> ProcStat | None:
    """State, parent, process group and start time of ``pid``; None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def proc_table() -> dict[int, ProcStat]:
    """pid -> ProcStat for every process visible in /proc."""
    table: dict[int, ProcStat] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    return table


def identity(pid: int) -> Identity | None:
    """The (pid, start time) of a running process, or None."""
    stat = proc_stat(pid)
    return (pid, stat.started) if stat else None


def is_alive(ident: Identity) -> bool:
    """True while the process named by ``ident`` runs (zombies do not count)."""
    stat = proc_stat(ident[0])
    return stat is not None and stat.state != "Z" and stat.started == ident[1]


def descendants(pid: int, table: Mapping[int, ProcStat] | None = None) -> set[int]:
    """Live (non-zombie) descendants of ``pid``."""
    table = proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for child, stat in table.items():
        children.setdefault(stat.parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if table[p].state != "Z"}


def group_members(pgid: int, table: Mapping[int, ProcStat] | None = None) -> set[int]:
    """Live (non-zombie) members of process group ``pgid``."""
    table = proc_table() if table is None else table
    return {pid for pid, stat in table.items() if stat.group == pgid and stat.state != "Z"}


# ---------------------------------------------------------------- one managed child


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C/SIGTERM still stop the group through stop()


@dataclass
class ManagedProcess:
    """A child process in its own process group, with a name, a log file and a health probe.

    ``stop()`` signals the whole group and every descendant ever seen (some leave the group),
    so nothing of it is left behind: ``stop_signal`` first, then SIGTERM, then SIGKILL.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    healthy: Callable[[], bool]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    startup_timeout: float = 60.0
    port: int | None = None
    # `dagster dev` shuts its children down gracefully (and faster) on SIGINT.
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 15.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    seen: set[Identity] = field(default_factory=set, init=False)

    def start(self) -> ManagedProcess:
        """Start the process and wait until it is healthy, or raise ServiceError."""
        if self.port is not None and port_open(self.port):
            raise ServiceError(
                f"{self.name}: port {self.port} is already in use; stop whatever listens there "
                f"or choose another port (see .env.example)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as log:
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
                raise ServiceError(f"{self.name}: could not start {self.argv[0]}: {exc}") from exc
        self.remember()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} during start-up; "
                    f"log: {self.log_path}\n{tail(self.log_path)}"
                )
            if self.healthy():
                self.remember()
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

    @property
    def returncode(self) -> int | None:
        """Exit code once the process ended."""
        return None if self.proc is None else self.proc.poll()

    def remember(self) -> None:
        """Note the process and its current descendants, to stop strays that leave the group."""
        if self.proc is None:
            return
        for pid in {self.proc.pid, *descendants(self.proc.pid)}:
            ident = identity(pid)
            if ident:
                self.seen.add(ident)

    def _left(self) -> tuple[bool, set[Identity]]:
        """(is the group alive, the strays outside it that still run)."""
        assert self.proc is not None
        table = proc_table()
        group = group_members(self.proc.pid, table)
        strays = {
            ident
            for ident in self.seen
            if ident[0] not in group
            and (stat := table.get(ident[0])) is not None
            and stat.state != "Z"
            and stat.started == ident[1]
        }
        return bool(group), strays

    def stop(self, timeout: float | None = None) -> None:
        """Stop the group and its strays: ``stop_signal``, SIGTERM, then SIGKILL; verify."""
        if self.proc is None:
            return
        self.remember()
        first = self.stop_timeout if timeout is None else timeout
        steps: list[tuple[signal.Signals, float]] = [(self.stop_signal, first)]
        if self.stop_signal != signal.SIGTERM:
            steps.append((signal.SIGTERM, 5.0))
        steps.append((signal.SIGKILL, 5.0))
        for sig, wait in steps:
            group, strays = self._left()
            if not group and not strays:
                break
            if group:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, sig)
            _signal_all(strays, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(self._left()):
                self.proc.poll()
                time.sleep(0.1)
        group, strays = self._left()
        if group or strays:
            raise ServiceError(
                f"{self.name}: processes survived SIGKILL: group {self.proc.pid}, "
                f"{sorted(pid for pid, _ in strays)}"
            )
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)


def _signal_all(idents: Iterable[Identity], sig: signal.Signals) -> None:
    for ident in idents:
        if is_alive(ident):
            with contextlib.suppress(ProcessLookupError):
                os.kill(ident[0], sig)
