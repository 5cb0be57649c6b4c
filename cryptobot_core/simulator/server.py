"""One aiohttp server for REST and WebSocket, running in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType

from aiohttp import web

from cryptobot_core.errors import ServiceError
from cryptobot_core.simulator.archive import Archives, ArchiveServer
from cryptobot_core.simulator.clock import SimClock
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.market import Market
from cryptobot_core.simulator.rest import Rest, WeightLimiter
from cryptobot_core.simulator.ws import WsHub

log = logging.getLogger(__name__)


# Binance accepts long combined-stream URLs; aiohttp's default request line limit (8 KB) would
# refuse a handshake naming a few hundred streams.
_MAX_LINE = 64 * 1024


class SimulatorServer:
    """The offline Binance stand-in: ``SimulatorServer(config).start()`` ... ``stop()``.

    One port serves REST (``/api/v3/...``), WebSocket streams (``/ws``, ``/stream``) and the
    bulk archives (``/data/spot/...``): ``url`` is at once the REST base URL and the archive
    base URL, ``ws_url`` the stream base URL.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Faults | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.clock: SimClock = self.config.clock
        self.market = Market(self.config)
        self.faults = faults or Faults()
        self.stats = Stats()
        self.limiter = WeightLimiter(self.config, self.clock, self.stats)
        self.rest = Rest(self.config, self.market, self.faults, self.stats, self.limiter)
        self.hub = WsHub(self.config, self.market, self.faults, self.stats, gate=self.rest.ws_gate)
        self.archives = Archives(
            self.market, self.config.archive_delay_s, self.config.archive_cache_mb, self.stats
        )
        self.archive_server = ArchiveServer(self.archives, self.clock, self.faults, self.stats)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (REST routes, WebSocket routes, Binance middleware)."""
        app = web.Application(middlewares=[self.rest.middleware])
        app.add_routes(self.rest.routes())
        app.add_routes(self.hub.routes())
        app.add_routes(self.archive_server.routes())
        return app

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Start serving in a background thread; returns self once listening."""
        if self._thread is not None:
            raise ServiceError("simulator already started")
        self.faults.attach(self)
        self._thread = threading.Thread(target=self._run, name="binance-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise ServiceError(
                f"simulator could not listen on {self.host}:{self.port}: {self._error or 'timeout'}"
            )
        log.info("simulator listening on %s (seed %s)", self.url, self.config.seed)
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()
        else:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self.hub.loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(
            self.app(),
            handle_signals=False,
            access_log=None,
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_LINE,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=1.0)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()

    async def _shutdown(self) -> None:
        await self.hub.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and stop the server thread."""
        loop, thread = self._loop, self._thread
        self.faults.detach(self)
        self.archive_server.close()
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout)
            except (concurrent.futures.TimeoutError, RuntimeError) as exc:
                log.warning("simulator shutdown was not clean: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> SimulatorServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """REST base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket base URL, e.g. ws://127.0.0.1:PORT."""
        return f"ws://{self.host}:{self.port}"

    # ---- fault actions (Faults calls these from any thread) ------------------------------

    def _on_loop(self, action: Callable[[], Awaitable[int]]) -> int:
        """Run ``action`` on the server's loop and wait for its result (0 if not running)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return 0
        if threading.current_thread() is self._thread:
            raise ServiceError(
                "simulator fault actions must be called from outside the server's event loop"
            )

        async def run() -> int:
            return await action()

        try:
            return asyncio.run_coroutine_threadsafe(run(), loop).result(10.0)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return 0

    def drop_connections(self) -> int:
        """Abort every WebSocket's transport (no close frame); how many."""
        loop = self._loop
        if loop is not None and threading.current_thread() is self._thread:
            return self.hub.drop_all()

        async def drop() -> int:
            return self.hub.drop_all()

        return self._on_loop(drop)

    def announce_shutdown(self, grace_s: float) -> int:
        """serverShutdown to every WebSocket, each closed ``grace_s`` later; how many."""
        return self._on_loop(lambda: self.hub.announce_shutdown(grace_s))

    def send_raw(self, frame: str | bytes, stream: str | None) -> int:
        """One raw frame on the connections carrying ``stream`` (all if None); how many."""
        return self._on_loop(lambda: self.hub.send_raw(frame, stream))

    def refuse_rest(self, status: int, seconds: float) -> None:
        """418 (a ban) or 429 (a throttle) for ``seconds`` simulated seconds; 0 lifts it."""
        self.limiter.refuse(status, seconds)

    def __repr__(self) -> str:
        return f"SimulatorServer(url={self.url!r}, seed={self.config.seed})"
