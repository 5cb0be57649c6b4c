"""The local stack supervisor behind ``cryptobot up``.

Starts, in order and each only once the previous one is healthy: the document store
(SecantusDB), the broker (Tansu), the exchange simulator, ``dagster dev``, the API and the
dashboard. Every child gets the same resolved settings through its environment, so they all
agree on the exchange, the ports and the URIs. Each child runs in its own process group and
logs to ``<data_dir>/logs/<name>.log``. A child that dies is restarted up to
``settings.max_restarts`` times; after that the whole stack stops with an error naming the
service and its log. Stopping (Ctrl-C, SIGTERM) stops every group and verifies that no
process of the stack is left.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx

from cryptobot_core import services
from cryptobot_core.errors import ServiceError
from cryptobot_core.settings import Settings

logger = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# Names accepted by ``cryptobot up --skip``; also the log file names.
SERVICE_NAMES = ("store", "broker", "simulator", "dagster", "api", "dashboard")
AUTO_PING_TIMEOUT_S = 5.0
MIN_JAVA = 17


# ---------------------------------------------------------------- exchange resolution


def resolve_exchange(settings: Settings, timeout: float = AUTO_PING_TIMEOUT_S) -> Settings:
    """Settings with a concrete exchange: ``auto`` becomes ``binance`` if it answers, else ``sim``."""
    if settings.exchange != "auto":
        return settings.model_copy(update={"exchange_fallback_reason": None})
    url = f"{settings.binance_rest_url.rstrip('/')}/api/v3/ping"
    try:
        response = httpx.get(url, timeout=timeout)
        if response.status_code == 200:
            logger.info("exchange=auto: Binance answered %s, using Binance", url)
            return settings.model_copy(
                update={"exchange": "binance", "exchange_fallback_reason": None}
            )
        reason = f"{url} answered HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        reason = f"{url} did not answer within {timeout:g} s ({type(exc).__name__}: {exc})"
    logger.warning(
        "\n%s\n  exchange=auto: Binance is NOT reachable: %s\n"
        "  USING THE BUILT-IN SIMULATOR: prices are synthetic and are stored in the "
        "database %r, apart from real data.\n  Set CRYPTOBOT_EXCHANGE=binance or "
        "CRYPTOBOT_EXCHANGE=sim to choose explicitly.\n%s",
        "!" * 78,
        reason,
        settings.model_copy(update={"exchange": "sim"}).database,
        "!" * 78,
    )
    return settings.model_copy(update={"exchange": "sim", "exchange_fallback_reason": reason})


# ---------------------------------------------------------------- environment for children


def redact(uri: str) -> str:
    """The URI without its password, for logs and messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _local_host(host: str) -> str:
    # A wildcard bind address is not something a client can connect to.
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def stack_settings(settings: Settings, started: Iterable[str] = SERVICE_NAMES) -> Settings:
    """The settings every child must see: absolute data dir, effective URIs and local URLs."""
    started = set(started)
    update: dict[str, object] = {
        "data_dir": settings.data_dir.expanduser().resolve(),
        "mongo_uri": settings.effective_mongo_uri,
        "kafka_bootstrap_servers": settings.effective_kafka_bootstrap,
    }
    if "api" in started:
        update["api_url"] = f"http://{_local_host(settings.api_host)}:{settings.api_port}"
        # The dashboard's origin must be allowed whatever port it was moved to.
        origins = list(settings.api_cors_origins)
        for host in ("localhost", "127.0.0.1"):
            origin = f"http://{host}:{settings.dashboard_port}"
            if origin not in origins:
                origins.append(origin)
        update["api_cors_origins"] = origins
    if "dagster" in started:
        update["dagster_url"] = f"http://127.0.0.1:{settings.dagster_port}"
        # `make up` runs the whole system: the live stream starts with Dagster unless the
        # user chose otherwise (tests and library use keep the sensor stopped by default).
        if "stream_supervisor_autostart" not in settings.model_fields_set:
            update["stream_supervisor_autostart"] = True
    return settings.model_copy(update=update)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as a ``CRYPTOBOT_*`` variable (lists comma-separated, None left out)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"CRYPTOBOT_{name.upper()}"] = text
    return env


# ---------------------------------------------------------------- checks


def java_major_version(java: str | None = None) -> int | None:
    """Major version of the Java that PySpark will use (JAVA_HOME first), or None if absent."""
    if java is None:
        home = os.environ.get("JAVA_HOME")
        candidate = Path(home, "bin", "java") if home else None
        java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_version(out.stderr + out.stdout)


def parse_java_version(text: str) -> int | None:
    """Major version from ``java -version`` output ('1.8.0_392' is 8, '17.0.15' is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def check_java(settings: Settings, version: int | None) -> str | None:
    """Raise ServiceError (or return a warning) when Java is missing or older than 17."""
    if version is not None and version >= MIN_JAVA:
        return None
    found = (
        "no Java was found (java on PATH or $JAVA_HOME/bin/java)"
        if version is None
        else f"Java {version} was found"
    )
    message = (
        f"Spark features (PySpark, run by Dagster): {found}, but PySpark needs Java "
        f"{MIN_JAVA}+. Install a JDK/JRE 17 (e.g. `apt-get install openjdk-17-jre-headless` "
        f"or `brew install openjdk@17`) and set JAVA_HOME, or set "
        f"CRYPTOBOT_REQUIRE_JAVA=false to start without the Spark features."
    )
    if settings.require_java:
        raise ServiceError(message)
    return message


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack: how to start it and how to know it is healthy."""

    name: str
    title: str
    argv: tuple[str, ...]
    port: int
    port_var: str
    health_url: str
    url: str
    startup_timeout: float = 120.0
    # Called before each start (e.g. to install dagster.yaml into DAGSTER_HOME).
    prepare: Callable[[], None] | None = None
    # Sent to the whole process group first; SIGTERM then SIGKILL follow after stop_timeout.
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0


@dataclass(frozen=True)
class Endpoint:
    """Something the user can open or connect to once the stack is up."""

    title: str
    url: str


def api_available() -> bool:
    """True once the API module exists (built by a later issue)."""
    try:
        return importlib.util.find_spec("cryptobot_api.main") is not None
    except ModuleNotFoundError:
        return False


def dashboard_script() -> Path:
    """Path of the Streamlit app (it exists once the dashboard issue lands)."""
    return PACKAGE_ROOT / "dashboard" / "app.py"


def install_dagster_home(dagster_home: Path) -> None:
    """Create DAGSTER_HOME and (re)install the dev dagster.yaml, so template edits apply."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = PACKAGE_ROOT / "deploy" / "dagster.dev.yaml"
    if not template.exists():
        raise ServiceError(f"dagster: instance template {template} is missing")
    shutil.copyfile(template, dagster_home / "dagster.yaml")


def _cryptobot_argv() -> list[str]:
    script = Path(sys.executable).with_name("cryptobot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cryptobot_core.cli import main; main()"]


def plan(settings: Settings, skip: Iterable[str] = ()) -> list[ServiceSpec]:
    """The services to start for (resolved) ``settings``, in start order."""
    skip = set(skip)
    unknown = skip - set(SERVICE_NAMES)
    if unknown:
        raise ServiceError(
            f"unknown service(s) to skip: {sorted(unknown)}; allowed: {', '.join(SERVICE_NAMES)}"
        )
    if settings.exchange == "auto":
        raise ServiceError("internal: resolve_exchange() must run before plan()")
    data_dir = settings.data_dir.expanduser().resolve()
    py = sys.executable
    specs: list[ServiceSpec] = []
    if settings.mongo_uri is None and "store" not in skip:
        port = settings.mongo_port
        specs.append(
            ServiceSpec(
                name="store",
                title="document store (SecantusDB)",
                argv=tuple(services.secantus_argv(port, data_dir / "mongo")),
                port=port,
                port_var="CRYPTOBOT_MONGO_PORT",
                health_url="",
                url=settings.effective_mongo_uri,
                startup_timeout=90,
                stop_timeout=20,
                prepare=lambda: (data_dir / "mongo").mkdir(parents=True, exist_ok=True),
            )
        )
    if settings.kafka_bootstrap_servers is None and "broker" not in skip:
        port = settings.kafka_port
        specs.append(
            ServiceSpec(
                name="broker",
                title="broker (Tansu)",
                argv=tuple(services.tansu_argv(port)),
                port=port,
                port_var="CRYPTOBOT_KAFKA_PORT",
                health_url="",
                url=settings.effective_kafka_bootstrap,
                startup_timeout=60,
            )
        )
    if settings.exchange == "sim" and "simulator" not in skip:
        specs.append(
            ServiceSpec(
                name="simulator",
                title="exchange simulator",
                argv=(*_cryptobot_argv(), "simulate", "--port", str(settings.sim_port)),
                port=settings.sim_port,
                port_var="CRYPTOBOT_SIM_PORT",
                health_url=f"{settings.sim_url}/api/v3/ping",
                url=settings.sim_url,
                startup_timeout=90,
            )
        )
    if "dagster" not in skip:
        port = settings.dagster_port
        specs.append(
            ServiceSpec(
                name="dagster",
                title="Dagster (webserver + daemon)",
                argv=(
                    py,
                    "-m",
                    "dagster",
                    "dev",
                    "-w",
                    str(PACKAGE_ROOT / "workspace.yaml"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ),
                port=port,
                port_var="CRYPTOBOT_DAGSTER_PORT",
                health_url=f"http://127.0.0.1:{port}/server_info",
                url=f"http://127.0.0.1:{port}",
                startup_timeout=240,
                prepare=lambda: install_dagster_home(data_dir / "dagster"),
                # Every dagster process shuts down gracefully (and faster) on SIGINT; on a busy
                # 2-core machine that takes 5-10 s.
                stop_signal=signal.SIGINT,
                stop_timeout=25,
            )
        )
    if "api" not in skip and api_available():
        port = settings.api_port
        local = f"http://{_local_host(settings.api_host)}:{port}"
        specs.append(
            ServiceSpec(
                name="api",
                title="API (FastAPI)",
                argv=(
                    py,
                    "-m",
                    "uvicorn",
                    "cryptobot_api.main:app",
                    "--host",
                    settings.api_host,
                    "--port",
                    str(port),
                ),
                port=port,
                port_var="CRYPTOBOT_API_PORT",
                health_url=f"{local}/health",
                url=f"{local}/docs",
                startup_timeout=120,
            )
        )
    script = dashboard_script()
    if "dashboard" not in skip and script.exists():
        port = settings.dashboard_port
        specs.append(
            ServiceSpec(
                name="dashboard",
                title="dashboard (Streamlit)",
                argv=(
                    py,
                    "-m",
                    "streamlit",
                    "run",
                    str(script),
                    "--server.port",
                    str(port),
                    "--server.address",
                    "127.0.0.1",
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                ),
                port=port,
                port_var="CRYPTOBOT_DASHBOARD_PORT",
                health_url=f"http://127.0.0.1:{port}/_stcore/health",
                url=f"http://127.0.0.1:{port}",
                startup_timeout=120,
            )
        )
    return specs


def preflight_ports(specs: Sequence[ServiceSpec], log_dir: Path) -> None:
    """Fail before starting anything when a port the stack needs is taken or duplicated."""
    seen: dict[int, ServiceSpec] = {}
    for spec in specs:
        log = log_dir / f"{spec.name}.log"
        if spec.port in seen:
            other = seen[spec.port]
            raise ServiceError(
                f"{spec.title}: port {spec.port} is also configured for {other.title} "
                f"({spec.port_var} and {other.port_var} must differ); log: {log}"
            )
        seen[spec.port] = spec
        if services.port_open(spec.port):
            raise ServiceError(
                f"{spec.title} cannot start: port {spec.port} is already in use. Stop whatever "
                f"listens there (another `cryptobot up`?) or set {spec.port_var} to a free "
                f"port (see .env.example); log: {log}"
            )


def check_external(settings: Settings) -> None:
    """Fail clearly when a configured external store or broker does not answer."""
    if settings.mongo_uri is not None and not services.mongo_ping(
        settings.mongo_uri, timeout_ms=settings.mongo_timeout_ms
    ):
        raise ServiceError(
            f"document store: CRYPTOBOT_MONGO_URI={redact(settings.mongo_uri)} does not answer "
            f"ping within {settings.mongo_timeout_ms} ms; check the URI and credentials, or unset "
            "it to use the embedded SecantusDB"
        )
    if settings.kafka_bootstrap_servers is not None:
        hosts = [h.strip() for h in settings.kafka_bootstrap_servers.split(",")]
        if not any(
            services.port_open(int(h.rsplit(":", 1)[1]), h.rsplit(":", 1)[0], timeout=3.0)
            for h in hosts
        ):
            raise ServiceError(
                f"broker: none of CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
                "accepts connections; check it, or unset it to use the embedded Tansu"
            )


# ---------------------------------------------------------------- process tree helpers


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) descendants of ``pid``."""
    table = services.proc_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _group, _state) in table.items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if table.get(p, (0, 0, "Z"))[2] != "Z"}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of ``pid``, or None when it does not exist."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time): unlike a bare pid, it never names a later, unrelated process."""
    stat = _stat(pid)
    return (pid, stat[1]) if stat else None


def _alive(ident: tuple[int, int]) -> bool:
    stat = _stat(ident[0])
    return stat is not None and stat[0] != "Z" and stat[1] == ident[1]


def _pid_alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


# ---------------------------------------------------------------- the supervisor


class StopRequested(Exception):
    """Raised in the main thread by the SIGINT/SIGTERM handler."""


@dataclass
class Running:
    """A started service and its bookkeeping."""

    spec: ServiceSpec
    process: services.ManagedProcess
    restarts: int = 0
    # Every (pid, start time) seen under this service, so strays outside its group are
    # found too, and a recycled pid is never mistaken for one of ours.
    seen: set[tuple[int, int]] = field(default_factory=set)


class Stack:
    """Starts, watches and stops the services of one ``cryptobot up``."""

    def __init__(self, settings: Settings, specs: Sequence[ServiceSpec]) -> None:
        self.settings = settings
        self.specs = list(specs)
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.log_dir = self.data_dir / "logs"
        self.env = {
            **settings_env(settings),
            "DAGSTER_HOME": str(self.data_dir / "dagster"),
            "PYTHONUNBUFFERED": "1",
        }
        self.running: list[Running] = []

    def log_path(self, spec: ServiceSpec) -> Path:
        """Where ``spec`` logs."""
        return self.log_dir / f"{spec.name}.log"

    def _health(self, spec: ServiceSpec) -> Callable[[], bool]:
        if spec.name == "store":
            uri = spec.url
            return lambda: services.mongo_ping(uri)
        if not spec.health_url:
            port = spec.port
            return lambda: services.port_open(port)
        url = spec.health_url
        return lambda: http_ok(url)

    def _process(self, spec: ServiceSpec) -> services.ManagedProcess:
        return services.ManagedProcess(
            name=spec.title,
            argv=list(spec.argv),
            log_path=self.log_path(spec),
            healthy=self._health(spec),
            env=self.env,
            port=spec.port,
            startup_timeout=spec.startup_timeout,
        )

    def start(self) -> None:
        """Start every service in order, each once the previous one is healthy."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            if spec.prepare:
                spec.prepare()
            logger.info("starting %s (log: %s)", spec.title, self.log_path(spec))
            entry = Running(spec, self._process(spec))
            # Registered before start() so a signal during start-up still stops it.
            self.running.append(entry)
            began = time.monotonic()
            entry.process.start()
            self._remember(entry)
            logger.info("%s is healthy after %.1f s", spec.title, time.monotonic() - began)

    def _remember(self, entry: Running) -> None:
        proc = entry.process.proc
        if proc is not None:
            for pid in {proc.pid, *descendants(proc.pid)}:
                ident = _identity(pid)
                if ident:
                    entry.seen.add(ident)

    def check(self) -> None:
        """Restart a service that died (within its bound) or raise ServiceError."""
        for entry in self.running:
            self._remember(entry)
            if entry.process.alive:
                continue
            proc = entry.process.proc
            code = proc.returncode if proc is not None else None
            log = self.log_path(entry.spec)
            logger.error(
                "%s exited unexpectedly (code %s); log: %s\n%s",
                entry.spec.title,
                code,
                log,
                services.tail(log),
            )
            if entry.restarts >= self.settings.max_restarts:
                raise ServiceError(
                    f"{entry.spec.title} died (exit code {code}) and was already restarted "
                    f"{entry.restarts} time(s) (CRYPTOBOT_MAX_RESTARTS={self.settings.max_restarts}); "
                    f"stopping the stack. log: {log}"
                )
            entry.restarts += 1
            # Leftovers of the dead process (e.g. dagster's children) would hold its port.
            self._stop_entry(entry, timeout=5.0)
            time.sleep(min(2 ** (entry.restarts - 1), 10))
            logger.warning(
                "restarting %s (%d/%d)",
                entry.spec.title,
                entry.restarts,
                self.settings.max_restarts,
            )
            entry.process = self._process(entry.spec)
            if entry.spec.prepare:
                entry.spec.prepare()
            entry.process.start()
            self._remember(entry)
            logger.warning("%s is healthy again", entry.spec.title)

    def _stop_entry(self, entry: Running, timeout: float) -> None:
        self._remember(entry)
        proc = entry.process.proc
        if proc is not None and entry.spec.stop_signal != signal.SIGTERM:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, entry.spec.stop_signal)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(_alive(ident) for ident in entry.seen):
                proc.poll()
                time.sleep(0.1)
            timeout = 5.0
        entry.process.stop(timeout=timeout)
        # Anything that left the process group: terminate, then kill.
        strays = {ident for ident in entry.seen if _alive(ident)}
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not strays:
                break
            for ident in strays:
                if _alive(ident):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(ident[0], sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(_alive(i) for i in strays):
                time.sleep(0.1)
            strays = {ident for ident in strays if _alive(ident)}
        if strays:
            logger.error(
                "%s: processes %s survived SIGKILL", entry.spec.title, sorted(p for p, _ in strays)
            )

    def stop(self) -> None:
        """Stop every started service, last started first, and verify none is left."""
        for entry in reversed(self.running):
            logger.info("stopping %s", entry.spec.title)
            try:
                self._stop_entry(entry, timeout=entry.spec.stop_timeout)
            except Exception:  # keep stopping the others whatever happens
                logger.exception("while stopping %s", entry.spec.title)
        self.running.clear()

    def endpoints(self) -> list[Endpoint]:
        """What the user can open, in start order, plus the exchange in use."""
        result = [Endpoint(spec.title, spec.url) for spec in self.specs]
        names = {spec.name for spec in self.specs}
        if "broker" not in names:
            result.insert(0, Endpoint("broker (external)", self.settings.effective_kafka_bootstrap))
        if "store" not in names:
            uri = redact(self.settings.effective_mongo_uri)
            result.insert(0, Endpoint("document store (external)", uri))
        if self.settings.exchange == "binance":
            result.append(Endpoint("exchange (Binance)", self.settings.binance_rest_url))
        return result


class _PidFile:
    """``<data_dir>/up.pid``: one ``cryptobot up`` per data dir (the store's files are shared)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def acquire(self) -> None:
        """Claim the data dir, or raise ServiceError if a live launcher holds it."""
        mine = _identity(os.getpid())
        try:
            pid, started = (int(x) for x in self.path.read_text().split())
            other: tuple[int, int] | None = (pid, started)
        except (OSError, ValueError):
            other = None
        if other and other != mine and _alive(other):
            raise ServiceError(
                f"another `cryptobot up` (pid {other[0]}) already runs with data dir "
                f"{self.path.parent}; stop it first, or set CRYPTOBOT_DATA_DIR to another folder"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{mine[0]} {mine[1]}" if mine else str(os.getpid()))

    def release(self) -> None:
        """Remove the claim if it is ours."""
        mine = _identity(os.getpid())
        try:
            if mine and self.path.read_text().split() == [str(mine[0]), str(mine[1])]:
                self.path.unlink()
        except OSError:
            pass


def run(
    settings: Settings,
    *,
    skip: Iterable[str] = (),
    on_ready: Callable[[Settings, list[Endpoint]], None] | None = None,
    stop_event: threading.Event | None = None,
    poll_s: float = 1.0,
) -> None:
    """Resolve, start and supervise the stack until SIGINT/SIGTERM (or ``stop_event``)."""
    skip = set(skip)
    resolved = resolve_exchange(settings)
    # Planned from the resolved settings: an unset mongo_uri still means "start the store".
    specs = plan(resolved, skip)
    warning = check_java(resolved, java_major_version())
    if warning:
        logger.warning(warning)
    check_external(resolved)
    final = stack_settings(resolved, [s.name for s in specs])
    data_dir = final.data_dir
    pidfile = _PidFile(data_dir / "up.pid")
    pidfile.acquire()
    stack = Stack(final, specs)
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
        preflight_ports(specs, stack.log_dir)
        stack.start()
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
        stack.stop()
        pidfile.release()
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("all services stopped")
