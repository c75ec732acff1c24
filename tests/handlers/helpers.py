"""Test helpers for the handler tests: a local HTTP receiver and a plugin ``app`` handle.

``Receiver`` is a real aiohttp server on a free port in its own thread, used
as the webhook target; its answers are scripted per request.  ``PluginHandle``
gives a plugin's ``startup`` the documented ``app`` attributes for tests of
an output on its own; the end-to-end tests use the real broker instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

from aiohttp import web


class Receiver:
    def __init__(self, script: list[int] | None = None):
        self.script = list(script or [])   # statuses to answer, in order; then 200
        self.requests: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"headers": dict(request.headers), "body": json.loads(body), "path": request.path})
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop():
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class PluginHandle:
    def __init__(self, name: str, settings: dict, data_dir: Path):
        self.name, self.settings, self.data_dir = name, settings, Path(data_dir)
        self.logger = logging.getLogger(f"test.{name}")
        self.routes: list[tuple] = []
        self.alerts: list[dict] = []

    def add_route(self, method, path, handler):
        self.routes.append((method, path, handler))

    def publish_alert(self, alert: dict) -> None:
        self.alerts.append(alert)

    def stats(self) -> dict:
        return {}
