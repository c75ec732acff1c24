"""The broker's HTTP endpoint: ``/healthz`` and the routes plugins add.

aiohttp runs on its own event loop in its own thread, so a slow HTTP client
never touches ingest.  Plugins add routes with ``app.add_route()`` during
``startup``; the server starts after every handler's ``startup`` ran (the
metrics handler adds ``/metrics`` this way, using nothing a third-party
plugin could not).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Awaitable, Callable

from aiohttp import web

from .health import DEFAULT_MAX_LAG, problems

log = logging.getLogger("secbus.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServer:
    def __init__(self, address: str, stats: Callable[[], dict[str, Any]], middlewares: tuple | list = ()):
        #: aiohttp middlewares, e.g. the bearer token check of secbus.auth.http
        self._middlewares = list(middlewares)
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self._stats = stats
        self._routes: list[tuple[str, str, Handler]] = [("GET", "/healthz", self._healthz)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.address = address

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Register an aiohttp handler (``async def handler(request) -> web.Response``)."""
        if self._thread is not None:
            raise RuntimeError("add_route: the HTTP server is already running; add routes during startup(app)")
        if any(m == method.upper() and p == path for m, p, _ in self._routes):
            raise ValueError(f"add_route: {method.upper()} {path} is already registered")
        self._routes.append((method.upper(), path, handler))

    async def _healthz(self, request: web.Request) -> web.Response:
        """The broker's figures plus ``problems`` (:mod:`secbus.health`); with ``?strict``,
        status 503 while there is one, for monitors that only read the status code."""
        raw_lag = request.query.get("max_lag", str(DEFAULT_MAX_LAG))
        if not (raw_lag.isascii() and raw_lag.isdigit()):
            return web.json_response({"error": f"max_lag: expected a whole number of records, got {raw_lag[:40]!r}"}, status=400)
        data = await asyncio.get_running_loop().run_in_executor(None, self._stats)
        data["problems"] = problems(data, int(raw_lag))
        status = 503 if "strict" in request.query and data["problems"] else 200
        return web.Response(text=json.dumps(data, indent=1, sort_keys=True), content_type="application/json", status=status)

    def start(self, timeout: float = 10.0) -> str:
        """Bind and serve in a thread; return the bound ``host:port``."""
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("http: server did not start in time")
        if self._error is not None:
            raise self._error
        return self.address

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = web.Application(middlewares=self._middlewares)
            for method, path, handler in self._routes:
                app.router.add_route(method, path, handler)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            sock = site._server.sockets[0]  # the bound port when 0 was asked for
            self.address = f"{self.host}:{sock.getsockname()[1]}"
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
