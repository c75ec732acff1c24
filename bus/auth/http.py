"""The bearer token in front of the broker's HTTP endpoints.

With ``[http] token`` set (or ``SECBUS_HTTP_TOKEN``), every path except
``/healthz`` answers 401 unless the request carries ``Authorization: Bearer
<token>``.  ``/healthz`` stays open because load balancers and orchestrators
probe it without credentials, and it reveals only counts.  The comparison is
:func:`hmac.compare_digest` (constant time), so response timing does not leak
how much of a guess was right.  Neither the token nor the presented value is
ever logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz"})

log = logging.getLogger("secbus.auth.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_matches(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (scheme case-insensitive, constant-time compare)."""
    if not header:
        return False
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8"))


def bearer_middleware(token: str, on_denied: Callable[[], None] | None = None):
    """An aiohttp middleware requiring the bearer ``token`` on every path but ``/healthz``.

    ``on_denied`` is called for each refused request (to count it)."""

    @web.middleware
    async def require_bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or token_matches(request.headers.get("Authorization"), token):
            return await handler(request)
        if on_denied is not None:
            on_denied()
        log.warning("http: refused %s %s from %s: missing or wrong bearer token", request.method, request.path, request.remote)
        return web.json_response(
            {"error": "unauthorized", "message": "this endpoint needs Authorization: Bearer <token> ([http] token)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="secbus"'},
        )

    return require_bearer
