"""The HTTP bearer token: every path but /healthz needs it; wrong or missing tokens get 401 and are counted."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from secbus.auth.http import token_matches
from secbus.auth.security import Security

TOKEN = "s3cr3t-token-value"


async def _serve_and_probe(security: Security, requests: list[tuple[str, dict]]) -> list[int]:
    async def ok(request):
        return web.Response(text="ok")

    app = web.Application(middlewares=security.http_middlewares())
    app.router.add_get("/healthz", ok)
    app.router.add_get("/metrics", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            out = []
            for path, headers in requests:
                async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
                    out.append(resp.status)
            return out
    finally:
        await runner.cleanup()


def test_bearer_token_guards_everything_but_healthz():
    security = Security(http_token=TOKEN)
    statuses = asyncio.run(
        _serve_and_probe(
            security,
            [
                ("/healthz", {}),
                ("/metrics", {}),
                ("/metrics", {"Authorization": "Bearer wrong"}),
                ("/metrics", {"Authorization": f"Basic {TOKEN}"}),
                ("/metrics", {"Authorization": f"Bearer {TOKEN}"}),
                ("/metrics", {"Authorization": f"bearer {TOKEN}"}),
            ],
        )
    )
    assert statuses == [200, 401, 401, 401, 200, 200]
    assert security.stats()["http_denied"] == 3


def test_without_a_token_http_is_open():
    assert asyncio.run(_serve_and_probe(Security(), [("/metrics", {})])) == [200]


def test_token_comparison_rejects_prefixes_and_empty_values():
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not token_matches("Bearer ", TOKEN)
    assert not token_matches(None, TOKEN)
