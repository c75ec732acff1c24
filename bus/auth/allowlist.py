"""The client allow-list: which CURVE public key is which publisher, tenant and event types.

Configured as ``[[auth.clients]]`` tables in the broker's TOML config::

    [[auth.clients]]
    name = "web-eu"                  # the publisher stamped on its events; the ZAP User-Id
    public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # or: public_key_file = "keys/web-eu.key"
    tenant = "acme"                  # stamped on its events; its live-feed namespace
    types = ["authn.", "authz."]     # event type prefixes it may publish; ["*"] for any
    admin = false                    # true: may subscribe to every tenant's live feed

A key that is not on the list is denied at the CURVE handshake (ZAP), so it
gets neither ACKs nor feed data.  Every mistake in the list is an error at
start naming the entry and the field, never a silently open door: a duplicate
key or name, a malformed key, an unknown field, a missing tenant or types.

Type prefixes match on segment boundaries: ``"authn"`` and ``"authn."`` both
allow ``authn.login`` but not ``authnx.login``; ``"authn.login"`` allows
exactly ``authn.login`` and ``authn.login.*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .keys import NAME_RE, KeyFileError, check_z85_key, load_public_key_file

#: A tenant names a live-feed namespace (``<tenant>/<topic>``), so it has no '/' or dots.
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TYPE_PREFIX_RE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*\.?")
ANY_TYPE = "*"
CLIENT_FIELDS = ("name", "public_key", "public_key_file", "tenant", "types", "admin")


class AllowListError(ValueError):
    """An allow-list entry that cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class Identity:
    """Who an authenticated connection is: the allow-list entry of its key.

    Ingest uses it as the request's identity: ``publisher``, ``tenant`` and
    :meth:`may_publish` are what it stamps and checks."""

    name: str
    public_key: bytes
    tenant: str
    types: tuple[str, ...]
    admin: bool = False
    _exact: frozenset = field(init=False, repr=False, compare=False)
    _prefixes: tuple = field(init=False, repr=False, compare=False)
    _any: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # "authn." matches by prefix; "authn.login" matches itself and "authn.login.*".
        object.__setattr__(self, "_any", ANY_TYPE in self.types)
        object.__setattr__(self, "_exact", frozenset(t for t in self.types if not t.endswith(".")))
        object.__setattr__(self, "_prefixes", tuple(t if t.endswith(".") else t + "." for t in self.types if t != ANY_TYPE))

    @property
    def publisher(self) -> str:
        return self.name

    def may_publish(self, event_type: str) -> bool:
        """True when ``event_type`` falls under one of this identity's type prefixes."""
        return self._any or event_type in self._exact or event_type.startswith(self._prefixes)

    def describe_types(self) -> str:
        return ", ".join(repr(t) for t in self.types)


class AllowList:
    """The parsed allow-list, looked up by public key (at ZAP) and by name (at ingest)."""

    def __init__(self, identities: Iterable[Identity] = ()):
        self._by_key: dict[bytes, Identity] = {}
        self._by_name: dict[str, Identity] = {}
        for identity in identities:
            self._by_key[identity.public_key] = identity
            self._by_name[identity.name] = identity

    def __len__(self) -> int:
        return len(self._by_name)

    def by_key(self, public_key_z85: bytes) -> Identity | None:
        return self._by_key.get(bytes(public_key_z85))

    def by_name(self, name: str) -> Identity | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)


def _field(entry: Mapping[str, Any], where: str, key: str, kind: type, required: bool = True, default: Any = None) -> Any:
    if key not in entry:
        if required:
            raise AllowListError(f"{where}.{key}: required")
        return default
    value = entry[key]
    if kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok:
        raise AllowListError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def parse_client(entry: Any, index: int, base_dir: Path | None = None) -> Identity:
    """One ``[[auth.clients]]`` table as an :class:`Identity`."""
    where = f"auth.clients[{index}]"
    if not isinstance(entry, Mapping):
        raise AllowListError(f"{where}: expected a table, got {entry!r}")
    unknown = sorted(set(entry) - set(CLIENT_FIELDS))
    if unknown:
        raise AllowListError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(CLIENT_FIELDS)})")
    name = _field(entry, where, "name", str)
    if not NAME_RE.fullmatch(name):
        raise AllowListError(f"{where}.name: expected letters, digits, '_', '.' or '-' (1-128), got {name!r}")
    where = f"auth.clients[{index}] ({name})"
    key_value = _field(entry, where, "public_key", str, required=False)
    key_file = _field(entry, where, "public_key_file", str, required=False)
    if (key_value is None) == (key_file is None):
        raise AllowListError(f"{where}: give exactly one of public_key or public_key_file")
    try:
        if key_value is not None:
            public_key = check_z85_key(key_value, f"{where}.public_key")
        else:
            path = Path(key_file).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            try:
                public_key = load_public_key_file(path)
            except KeyFileError as exc:
                raise KeyFileError(f"{where}.public_key_file: {exc}") from None
    except KeyFileError as exc:
        raise AllowListError(str(exc)) from None
    tenant = _field(entry, where, "tenant", str)
    if not TENANT_RE.fullmatch(tenant):
        raise AllowListError(f"{where}.tenant: expected 1-64 of a-z, 0-9, '_', '-' (starting with a letter or digit), got {tenant!r}")
    types = _field(entry, where, "types", list)
    if not types:
        raise AllowListError(f"{where}.types: empty; list the event type prefixes it may publish, or [\"*\"] for any")
    for i, prefix in enumerate(types):
        if not isinstance(prefix, str) or not (prefix == ANY_TYPE or TYPE_PREFIX_RE.fullmatch(prefix)):
            raise AllowListError(f"{where}.types[{i}]: expected \"*\" or a lowercase dotted type prefix like \"authn.\", got {prefix!r}")
    admin = _field(entry, where, "admin", bool, required=False, default=False)
    return Identity(name=name, public_key=public_key, tenant=tenant, types=tuple(types), admin=admin)


def parse_allow_list(entries: Any, base_dir: Path | None = None) -> AllowList:
    """Parse the ``auth.clients`` array; raise :class:`AllowListError` on the first bad entry.

    ``base_dir`` resolves relative ``public_key_file`` paths (the config file's directory)."""
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise AllowListError(f"auth.clients: expected an array of tables ([[auth.clients]]), got {entries!r}")
    identities: list[Identity] = []
    seen_names: dict[str, int] = {}
    seen_keys: dict[bytes, int] = {}
    for index, entry in enumerate(entries):
        identity = parse_client(entry, index, base_dir)
        if identity.name in seen_names:
            raise AllowListError(f"auth.clients[{index}].name: {identity.name!r} is already used by auth.clients[{seen_names[identity.name]}]")
        if identity.public_key in seen_keys:
            raise AllowListError(
                f"auth.clients[{index}].public_key: the key of {identity.name!r} is already given to auth.clients[{seen_keys[identity.public_key]}]; one key, one identity"
            )
        seen_names[identity.name] = index
        seen_keys[identity.public_key] = index
        identities.append(identity)
    return AllowList(identities)
