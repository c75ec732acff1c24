"""A URL as logs, errors, ``/healthz`` and ``secbus config show`` print it: scheme, host and port.

A webhook URL often carries its credential: in the path (Slack's
``/services/T.../B.../<secret>``), the query (``?token=``) or the user info
(``user:password@``).  None of that may reach a log or the open ``/healthz``
(docs/security.md), so everything after the authority is shown as ``/...``;
the host is what an operator needs to tell which receiver failed.
"""

from __future__ import annotations

import urllib.parse


def shown_url(url: str) -> str:
    """``https://hooks.example:8443/...`` for ``https://u:pw@hooks.example:8443/services/T/B/secret``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc:  # not scheme://host...: keep what precedes the first slash
        head, slash, _rest = url.partition("/")
        return head.rpartition("@")[2] + ("/..." if slash else "")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: show none
        port = None
    head = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    beyond = parts.path.strip("/") or parts.query or parts.fragment or parts.username is not None
    return head + ("/..." if beyond else "")
