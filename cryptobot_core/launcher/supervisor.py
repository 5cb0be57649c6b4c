"""The supervisor: start the planned services in order, restart the ones that die, stop all."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher import java
from cryptobot_core.launcher.credentials import prepare_store_access
from cryptobot_core.launcher.exchange import resolve_exchange
from cryptobot_core.launcher.pidfile import PidFile
from cryptobot_core.launcher.processes import ManagedProcess, mongo_ping, port_open, tail
from cryptobot_core.launcher.specs import DAGSTER, STORE, ServiceSpec, plan
from cryptobot_core.launcher.stackenv import (
    remove_stack_env,
    service_env,
    stack_settings,
    write_stack_env,
)
from cryptobot_core.settings import Settings, redact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Something the user can open or connect to once the stack is up."""

    title: str
    url: str


# ---------------------------------------------------------------- checks before starting


def check_java(settings: Settings, version: int | None) -> str | None:
    """Raise ServiceError (or return a warning) when Spark's Java is missing or too old."""
    problem = java.java_problem(version)
    if problem is None:
        return None
    message = f"{problem}; or set CRYPTOBOT_REQUIRE_JAVA=false to start without the Spark features"
    if settings.require_java:
        raise ServiceError(message)
    return message


def preflight_ports(settings: Settings, specs: Sequence[ServiceSpec], log_dir: Path) -> None:
    """Fail before starting anything when a port the stack needs is taken or duplicated."""
    seen: dict[int, ServiceSpec] = {}
    for spec in specs:
        port = spec.port(settings)
        log = log_dir / f"{spec.name}.log"
        if port in seen:
            other = seen[port]
            raise ServiceError(
                f"{spec.title}: port {port} is also configured for {other.title} "
                f"({spec.port_var} and {other.port_var} must differ); log: {log}"
            )
        seen[port] = spec
        if port_open(port):
            raise ServiceError(
                f"{spec.title} cannot start: port {port} is already in use. Stop whatever "
                f"listens there (another `cryptobot up`?) or set {spec.port_var} to a free "
                f"port (see .env.example); log: {log}"
            )


def check_external(settings: Settings) -> None:
    """Fail clearly when a configured external store or broker does not answer."""
    for var, uri in (
        ("CRYPTOBOT_MONGO_URI", settings.mongo_uri),
        ("CRYPTOBOT_MONGO_READ_URI", settings.mongo_read_uri),
    ):
        if uri is not None and not mongo_ping(uri, timeout_ms=settings.mongo_timeout_ms):
            raise ServiceError(
                f"document store: {var}={redact(uri)} does not answer ping within "
                f"{settings.mongo_timeout_ms} ms; check the URI and credentials, or unset it to "
                "use the embedded SecantusDB"
            )
    if settings.kafka_bootstrap_servers is not None:
        hosts = [h.strip().rsplit(":", 1) for h in settings.kafka_bootstrap_servers.split(",")]
        if not any(port_open(int(port), host, timeout=3.0) for host, port in hosts):
            raise ServiceError(
                f"broker: none of CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
                "accepts connections; check it, or unset it to use the embedded Tansu"
            )


# ---------------------------------------------------------------- the stack


@dataclass
class Running:
    """A started service and how often it was restarted."""

    spec: ServiceSpec
    process: ManagedProcess
    restarts: int = 0


class Stack:
    """Starts, watches and stops the services of one ``cryptobot up``."""

    def __init__(self, settings: Settings, specs: Sequence[ServiceSpec]) -> None:
        self.settings = settings
        self.specs = list(specs)
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.log_dir = self.data_dir / "logs"
        self.running: list[Running] = []

    def log_path(self, spec: ServiceSpec) -> Path:
        """Where ``spec`` logs."""
        return self.log_dir / f"{spec.name}.log"

    def _launch(self, spec: ServiceSpec) -> ManagedProcess:
        if spec.prepare:
            spec.prepare(self.settings)
        env = {
            **service_env(self.settings, spec.access),
            "DAGSTER_HOME": str(self.data_dir / "dagster"),
            "PYTHONUNBUFFERED": "1",
        }
        return spec.process(self.settings, self.log_path(spec), env)

    def _started(self, entry: Running) -> None:
        if entry.spec.ready:
            entry.spec.ready(self.settings)

    def start(self) -> None:
        """Start every service in order, each once the previous one is healthy."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            logger.info("starting %s (log: %s)", spec.title, self.log_path(spec))
            entry = Running(spec, self._launch(spec))
            # Registered before start() so a signal during start-up still stops it.
            self.running.append(entry)
            began = time.monotonic()
            entry.process.start()
            self._started(entry)
            logger.info("%s is healthy after %.1f s", spec.title, time.monotonic() - began)

    def check(self) -> None:
        """Restart a service that died (within its bound) or raise ServiceError."""
        for entry in self.running:
            entry.process.remember()
            if entry.process.alive:
                continue
            code = entry.process.returncode
            log = self.log_path(entry.spec)
            logger.error(
                "%s exited unexpectedly (code %s); log: %s\n%s",
                entry.spec.title,
                code,
                log,
                tail(log),
            )
            if entry.restarts >= self.settings.max_restarts:
                raise ServiceError(
                    f"{entry.spec.title} died (exit code {code}) and was already restarted "
                    f"{entry.restarts} time(s) (CRYPTOBOT_MAX_RESTARTS={self.settings.max_restarts}); "
                    f"stopping the stack. log: {log}"
                )
            entry.restarts += 1
            # Leftovers of the dead process (e.g. dagster's children) would hold its port.
            entry.process.stop(timeout=5.0)
            time.sleep(min(2 ** (entry.restarts - 1), 10))
            logger.warning(
                "restarting %s (%d/%d)",
                entry.spec.title,
                entry.restarts,
                self.settings.max_restarts,
            )
            entry.process = self._launch(entry.spec)
            entry.process.start()
            self._started(entry)
            logger.warning("%s is healthy again", entry.spec.title)

    def stop(self) -> None:
        """Stop every started service, last started first, and verify none is left."""
        for entry in reversed(self.running):
            logger.info("stopping %s", entry.spec.title)
            try:
                entry.process.stop()
            except Exception:  # keep stopping the others whatever happens
                logger.exception("while stopping %s", entry.spec.title)
        self.running.clear()

    def endpoints(self) -> list[Endpoint]:
        """What the user can open, in start order, plus what the stack did not start."""
        result = [Endpoint(spec.title, spec.url(self.settings)) for spec in self.specs]
        names = {spec.name for spec in self.specs}
        if "broker" not in names:
            result.insert(0, Endpoint("broker (external)", self.settings.effective_kafka_bootstrap))
        if "store" not in names:
            uri = redact(self.settings.effective_mongo_uri)
            result.insert(0, Endpoint("document store (external)", uri))
        if self.settings.exchange == "binance":
            result.append(Endpoint("exchange (Binance)", self.settings.binance_rest_url))
        return result


# ---------------------------------------------------------------- `cryptobot up`


class StopRequested(Exception):
    """Raised in the main thread by the SIGINT/SIGTERM handler."""


def run(
    settings: Settings,
    *,
    skip: Iterable[str] = (),
    reset_credentials: bool = False,
    on_ready: Callable[[Settings, list[Endpoint]], None] | None = None,
    stop_event: threading.Event | None = None,
    poll_s: float = 1.0,
) -> None:
    """Resolve, start and supervise the stack until SIGINT/SIGTERM (or ``stop_event``)."""
    resolved = resolve_exchange(settings)
    # Planned from the resolved settings: an unset mongo_uri still means "start the store".
    specs = plan(resolved, skip)
    if DAGSTER in specs:
        warning = check_java(resolved, java.java_major_version())
        if warning:
            logger.warning(warning)
    check_external(resolved)
    data_dir = resolved.data_dir.expanduser().resolve()
    log_dir = data_dir / "logs"
    pidfile = PidFile(data_dir)
    pidfile.acquire()
    stack: Stack | None = None
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping:
            logger.warning("already stopping; please wait")
            return
        raise StopRequested(signal.Signals(signum).name)

    in_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        preflight_ports(resolved, specs, log_dir)
        if STORE in specs:
            resolved = prepare_store_access(
                resolved, log_dir / f"{STORE.name}.log", reset=reset_credentials
            )
        elif reset_credentials:
            raise ServiceError(
                "--reset-credentials applies to the embedded store, which this stack does not "
                "start (CRYPTOBOT_MONGO_URI is set or the store is skipped)"
            )
        final = stack_settings(resolved, [s.name for s in specs])
        stack = Stack(final, specs)
        stack.start()
        write_stack_env(final)
        if on_ready:
            on_ready(final, stack.endpoints())
        while stop_event is None or not stop_event.is_set():
            stack.check()
            if stop_event is not None:
                stop_event.wait(poll_s)
            else:
                time.sleep(poll_s)
    except (StopRequested, KeyboardInterrupt) as exc:
        logger.info("stop requested (%s); stopping the stack", exc or "SIGINT")
    finally:
        stopping = True
        remove_stack_env(data_dir)
        if stack is not None:
            stack.stop()
        pidfile.release()
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("all services stopped")
