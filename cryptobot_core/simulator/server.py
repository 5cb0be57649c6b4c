"""One aiohttp server for REST and WebSocket, running in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from types import TracebackType

from aiohttp import web

from cryptobot_core.errors import ServiceError
from cryptobot_core.simulator.clock import SimClock
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.market import Market
from cryptobot_core.simulator.rest import Rest, WeightLimiter
from cryptobot_core.simulator.ws import WsHub

log = logging.getLogger(__name__)


class SimulatorServer:
    """The offline Binance stand-in: ``SimulatorServer(config).start()`` ... ``stop()``."""

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
        self.hub = WsHub(self.config, self.market, self.faults, self.stats)
        self.faults.on_drop(self._drop_from_any_thread)
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
        return app

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Start serving in a background thread; returns self once listening."""
        if self._thread is not None:
            raise ServiceError("simulator already started")
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
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
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

    # ---- faults across threads -------------------------------------------------------------

    def _drop_from_any_thread(self) -> int:
        loop = self._loop
        if loop is None or not loop.is_running():
            return 0
        try:
            if threading.current_thread() is self._thread:
                return self.hub.drop_all()
            fut: concurrent.futures.Future[int] = concurrent.futures.Future()

            def run() -> None:
                fut.set_result(self.hub.drop_all())

            loop.call_soon_threadsafe(run)
            return fut.result(5.0)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return 0

    def __repr__(self) -> str:
        return f"SimulatorServer(url={self.url!r}, seed={self.config.seed})"
