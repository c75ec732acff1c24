"""Reading a handler's ``[handlers.<name>]`` table with precise errors.

Every built-in handler gets its settings as a plain dict from ``app.settings``.
A typo in a config key or a value of the wrong type must stop the handler at
``startup`` with a message that names the handler, the key and the value,
rather than be silently ignored; this small reader does that once for all
built-ins (pydantic would also do it, but it would be a new dependency for
about forty lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from secbus.shown import shown_setting

# Keys the broker's runner reads from the same table; handlers ignore them.
RUNNER_KEYS = frozenset({"lag_policy", "max_lag", "batch_size", "enabled"})

_MISSING = object()


class SettingsError(ValueError):
    """A bad key or value in a handler's config table."""


class Settings:
    """Typed access to one handler's settings; remembers which keys were read."""

    def __init__(self, handler: str, values: Mapping[str, Any] | None):
        self.handler = handler
        self.values = dict(values or {})
        self._known: set[str] = set(RUNNER_KEYS)

    def _where(self, key: str) -> str:
        return f"[handlers.{self.handler}] {key}"

    def get(self, key: str, default: Any = _MISSING, kind: type | tuple = object,
            check: Callable[[Any], bool] | None = None, expect: str = "") -> Any:
        self._known.add(key)
        if key not in self.values:
            if default is _MISSING:
                raise SettingsError(f"{self._where(key)}: required setting is missing")
            return default
        value = self.values[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int subclass: never accept true for a number.
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds) or (check and not check(value)):
            # the value is named, with its secrets masked: this message reaches the log and /healthz
            raise SettingsError(f"{self._where(key)}: expected {expect or _names(kinds)}, got {shown_setting(key, value)!r}")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        return float(self.get(key, default, (int, float), lambda v: v >= minimum, f"a number >= {minimum:g}"))

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        return int(self.get(key, default, int, lambda v: v >= minimum, f"an integer >= {minimum}"))

    def string(self, key: str, default: Any = _MISSING, choices: Iterable[str] | None = None) -> str:
        allowed = tuple(choices) if choices else None
        if allowed:
            return self.get(key, default, str, lambda v: v in allowed, "one of " + ", ".join(map(repr, allowed)))
        return self.get(key, default, str, lambda v: bool(v), "a non-empty string")

    def strings(self, key: str, default: list[str]) -> list[str]:
        return list(self.get(key, default, list, lambda v: all(isinstance(x, str) and x for x in v), "a list of non-empty strings"))

    def path(self, key: str, default: Any = None, base: Path | None = None) -> Path | None:
        value = self.get(key, default, (str, Path), lambda v: bool(str(v)), "a path")
        if value is None:
            return None
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return path

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self.get(key, default, bool, None, "true or false"))

    def reject_unknown(self) -> None:
        """Call after every ``get``: any key not read is a typo or a misplaced key."""
        unknown = sorted(set(self.values) - self._known)
        if unknown:
            raise SettingsError(f"[handlers.{self.handler}]: unknown setting(s) {', '.join(map(repr, unknown))}; "
                                f"known: {', '.join(sorted(self._known - RUNNER_KEYS))}")


class Configured:
    """A handler whose settings are read by ``configure`` alone, without opening anything.

    ``startup`` calls ``configure`` and then opens what it needs;
    ``secbus config check`` calls ``check_settings``, which runs ``configure`` on a
    fresh instance, so a bad setting is found before a restart, not after it."""

    def configure(self, name: str, settings: Mapping[str, Any], data_dir: Path) -> None:
        raise NotImplementedError

    def check_settings(self, name: str, settings: Mapping[str, Any], data_dir: Path) -> None:
        """Raise ``ValueError`` naming the key and value if ``[handlers.<name>]`` is not usable."""
        type(self)().configure(name, settings, data_dir)


def _names(kinds: tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true or false",
             dict: "a table", Path: "a path", object: "a value"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
