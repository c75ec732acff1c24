"""The options that pick events by their fields, shared by ``secbus events`` and ``secbus tail``.

``--outcome``, ``--severity``, the actor's ``--actor-user``/``-ip``/``-key-id``/``-session``,
the source's ``--service``/``--host``, ``--resource``, ``--reason`` and ``--attr KEY=VALUE``
(repeatable) become the ``secbus.log.fields`` paths every matching event must hold.
"""

from __future__ import annotations

import argparse

from secbus_sdk.event import ATTR_KEY_RE, OUTCOMES, SEVERITIES

from . import Usage

# option (argparse dest) -> the field it compares
_FIELD_OPTIONS = {"actor_user": "actor.user", "actor_ip": "actor.ip", "actor_key_id": "actor.key_id",
                  "actor_session": "actor.session", "service": "source.service", "host": "source.host",
                  "resource": "resource", "reason": "reason"}


def add_field_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outcome", default=None, help=f"only events with this outcome: {', '.join(OUTCOMES)}")
    p.add_argument("--severity", default=None, help=f"only events with this severity: {', '.join(SEVERITIES)}")
    for option, field in _FIELD_OPTIONS.items():
        p.add_argument("--" + option.replace("_", "-"), default=None, metavar="TEXT", help=f"only events whose {field} is TEXT")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="only events with this attribute (repeatable; numbers and true/false compare as written)")


def fields_of(args) -> dict[str, str]:
    """The fields the options ask for; :class:`Usage` names a bad option."""
    if args.outcome is not None and args.outcome not in OUTCOMES:
        raise Usage(f"--outcome: expected one of {', '.join(OUTCOMES)}, got {args.outcome!r}")
    if args.severity is not None and args.severity not in SEVERITIES:
        raise Usage(f"--severity: expected one of {', '.join(SEVERITIES)}, got {args.severity!r}")
    fields = {field: getattr(args, option) for option, field in _FIELD_OPTIONS.items() if getattr(args, option) is not None}
    fields.update({name: getattr(args, name) for name in ("outcome", "severity") if getattr(args, name) is not None})
    for attr in args.attr:
        key, equals, value = attr.partition("=")
        if not equals or not ATTR_KEY_RE.fullmatch(key):
            raise Usage(f"--attr: expected KEY=VALUE, KEY a letter or _ then letters, digits, _ . : -, got {attr!r}")
        fields["attrs." + key] = value
    return fields
