"""Keeping secrets out of the audit log.

Audit records metadata, never secrets: an ``attrs`` key is *secret* when its
name, lowercased, contains one of the configured words (``password``,
``passwd``, ``secret``, ``token``, ``authorization``, ``cookie``,
``api_key``, ``apikey``, ``private_key`` by default).  Substring matching is
deliberate: ``api_token``, ``X-Auth-Token`` and ``session_cookie`` are
secrets too, and a false positive (``token_type``) only costs a value in the
audit log, whereas a false negative leaks a credential into a file kept for
years.  Secret keys are dropped with their values; the record lists the
dropped key names under ``redacted`` so a reader knows something was there.

Some fields identify a secret without being one to the reader (a session id
can be replayed as a bearer credential): those listed in ``hash_fields``
(``actor.session`` by default) are replaced by ``sha256:`` and the first 16
hex digits of their SHA-256, which still lets records be correlated.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from secbus.ingest.redact import DEFAULT_SECRET_WORDS  # one default list for ingest and audit

DEFAULT_HASH_FIELDS = ("actor.session",)


def fingerprint(value: object) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:16]


class Redactor:
    def __init__(self, secret_words: Iterable[str] = DEFAULT_SECRET_WORDS,
                 hash_fields: Iterable[str] = DEFAULT_HASH_FIELDS):
        self.words = tuple(w.lower() for w in secret_words)
        self._verdicts: dict[str, bool] = {}
        self.hash_fields = tuple(tuple(f.split(".", 1)) if "." in f else (f, None) for f in hash_fields)

    def is_secret(self, key: str) -> bool:
        known = self._verdicts.get(key)
        if known is None:
            lowered = key.lower()
            known = any(word in lowered for word in self.words)
            if len(self._verdicts) < 4096:  # attribute names repeat; the cache stays bounded
                self._verdicts[key] = known
        return known

    def redact(self, event: dict) -> tuple[dict, list[str]]:
        """``event`` made safe to store (a copy when anything changes; the
        original is never modified), and the names of what was removed."""
        removed: list[str] = []
        attrs = event.get("attrs")
        secret = False
        if isinstance(attrs, dict):
            verdicts = self._verdicts  # plain loops: this runs for every audited event
            for key in attrs:
                known = verdicts.get(key)
                if known is None:
                    known = self.is_secret(key)
                if known:
                    secret = True
                    break
        hashed = False
        for top, sub in self.hash_fields:
            value = event.get(top)
            if value is not None and (sub is None or (isinstance(value, dict) and value.get(sub) is not None)):
                hashed = True
                break
        if not secret and not hashed:
            return event, removed  # the common case: nothing to hide, no copy
        out = dict(event)
        if secret:
            kept = {}
            for key, value in attrs.items():
                if self.is_secret(key):
                    removed.append(f"attrs.{key}")
                else:
                    kept[key] = value
            out["attrs"] = kept
        for top, sub in self.hash_fields:
            if sub is None:
                if top in out and out[top] is not None:
                    out[top] = fingerprint(out[top])
            elif isinstance(out.get(top), dict) and out[top].get(sub) is not None:
                out[top] = dict(out[top])
                out[top][sub] = fingerprint(out[top][sub])
        return out, removed
