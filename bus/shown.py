"""Config values as logs, errors, ``/healthz`` and ``secbus config show`` print them: no secrets.

* A URL is shown as scheme, host and port (:func:`shown_url`).  A webhook URL
  often carries its credential: in the path (Slack's ``/services/T.../B.../<secret>``),
  the query (``?token=``) or the user info (``user:password@``); the host is what
  an operator needs to tell which receiver failed.
* A setting (:func:`shown_setting`) is masked when its key names a secret (the
  redaction words: ``token``, ``secret``, ``password``, ``authorization``...),
  unless the key names a file (``server_secret_key_file``: a path to a secret is
  not one); every value under ``headers`` is masked (``X-Api-Key`` and friends
  have too many spellings); a ``url`` is shown by :func:`shown_url`; the password
  of any other ``scheme://user:password@host`` value is masked.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Mapping

from .ingest.redact import DEFAULT_SECRET_WORDS

MASKED = "[masked]"
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")  # scheme://user:PASSWORD@host


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


def shown_setting(key: str, value: Any) -> Any:
    """``value`` (a config value, tables and lists included) with its secrets masked, for output."""
    lowered = key.lower()
    if isinstance(value, Mapping):
        if lowered == "headers":
            return {k: MASKED for k in value}
        return {k: shown_setting(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown_setting(key, v) for v in value]
    if value and any(word in lowered for word in DEFAULT_SECRET_WORDS) and not lowered.endswith("_file"):
        return MASKED
    if isinstance(value, str) and (lowered == "url" or lowered.endswith("_url")):
        return shown_url(value)
    if isinstance(value, str) and "@" in value and "://" in value:
        return _URL_PASSWORD.sub(rf"\1{MASKED}@", value)
    return value
