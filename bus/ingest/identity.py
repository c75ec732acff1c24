"""Who sent a request: the one place that maps a connection to a publisher and tenant.

Without authentication every publisher is ``anonymous`` in tenant ``default``
and may publish any type.  Authentication (CURVE with ZAP, ``bus/auth``)
replaces :func:`identity_for`'s body: it reads the ZAP ``User-Id`` of the
message's frames and looks the key up.  It may raise
``WireError(UNAUTHORIZED, ...)`` to refuse the whole request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import zmq


@dataclass(frozen=True, slots=True)
class Identity:
    """A request's origin as stamped on its events."""

    publisher: str
    tenant: str
    #: Type prefixes this publisher may publish (e.g. ``("authn.",)``); None means any type.
    allowed_types: tuple[str, ...] | None = None

    def may_publish(self, event_type: str) -> bool:
        return self.allowed_types is None or event_type.startswith(self.allowed_types)


ANONYMOUS = Identity(publisher="anonymous", tenant="default", allowed_types=None)


def identity_for(frames: Sequence[zmq.Frame], security=None) -> Identity:
    """The identity of the peer that sent ``frames`` (routing id first, as received).

    With CURVE on, ``security`` (``secbus.auth.security.Security``) maps the
    message's ZAP ``User-Id`` to its allow-list entry (publisher, tenant, type
    prefixes), or raises ``WireError(UNAUTHORIZED)``."""
    if security is not None and security.curve:
        return security.identity_for(frames)
    return ANONYMOUS
