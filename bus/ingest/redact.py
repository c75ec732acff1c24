"""Secrets never reach the event log: secret-named attrs are redacted at ingest.

Publishers should not put secrets in events (proto/EVENTS.md says what to use
instead), but one careless ``attrs={"password": ...}`` must not put a
credential into the durable log, the live feed, ``secbus trace`` output and
every handler. An ``attrs`` key is secret when its name, lowercased,
*contains* one of the configured words (``ingest.redact_keys``): substring
matching catches ``api_token`` and ``X-Auth-Token``; a false positive
(``token_type``) costs one value, a false negative leaks a credential. The
value is replaced by ``"[redacted]"`` and the key kept, so an analyst still
sees that a secret was sent (itself a finding). The audit handler applies
its own redaction on top (docs/audit.md).

Verdicts are cached per key name (attribute names repeat), so the common
case costs one dict lookup per attr and no copy.
"""

from __future__ import annotations

from typing import Iterable

DEFAULT_SECRET_WORDS = ("password", "passwd", "secret", "token", "authorization", "cookie",
                        "api_key", "apikey", "private_key")
REDACTED = "[redacted]"
_MAX_CACHED = 4096


class SecretKeys:
    """Decides which attrs keys are secret, and redacts their values."""

    def __init__(self, words: Iterable[str] = DEFAULT_SECRET_WORDS) -> None:
        self.words = tuple(word.lower() for word in words if word)
        self._verdicts: dict[str, bool] = {}

    def is_secret(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            lowered = key.lower()
            verdict = any(word in lowered for word in self.words)
            if len(self._verdicts) < _MAX_CACHED:
                self._verdicts[key] = verdict
        return verdict

    def any_secret(self, keys: Iterable[str]) -> bool:
        """Whether any of these attrs keys is secret (one cached verdict per key)."""
        if not self.words:
            return False
        verdicts = self._verdicts
        for key in keys:
            verdict = verdicts.get(key)
            if verdict or (verdict is None and self.is_secret(key)):
                return True
        return False

    def redact(self, event: dict) -> dict | None:
        """A copy of ``event`` with secret attrs values replaced, or None when
        there is nothing to redact (the event is then stored as received)."""
        attrs = event.get("attrs")
        if not attrs or not self.any_secret(attrs):
            return None
        out = dict(event)
        out["attrs"] = {key: REDACTED if self.is_secret(key) else value for key, value in attrs.items()}
        return out
