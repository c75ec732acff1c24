"""Properties of the auth parsers and the feed gate's rule, over arbitrary input (hypothesis).

- the allow-list parser and the key check raise only their own errors, whatever they are given;
- a tenant key's applied subscription always lies inside its own namespace, so no topic a
  subscriber can send reaches another tenant's messages;
- type scopes never allow a type outside every prefix's segment boundary.
"""

from __future__ import annotations

import string

from hypothesis import given, settings, strategies as st

from secbus.auth.allowlist import AllowListError, Identity, parse_allow_list
from secbus.auth.feed import namespace, scope_subscription
from secbus.auth.keys import KeyFileError, check_z85_key

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
client_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=20), json_values),
        "public_key": st.one_of(st.text(alphabet=string.printable, min_size=38, max_size=42), json_values),
        "tenant": st.one_of(st.text(max_size=10), json_values),
        "types": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
        "admin": json_values,
        "extra": json_values,
    },
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.one_of(json_values, st.lists(client_like, max_size=4)))
def test_allow_list_parser_raises_only_its_own_error(entries):
    try:
        parse_allow_list(entries)
    except AllowListError as exc:
        assert str(exc).startswith("auth.clients")


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_key_check_raises_only_its_own_error(value):
    try:
        assert len(check_z85_key(value, "k")) == 40
    except KeyFileError as exc:
        assert str(exc).startswith("k: ")


tenants = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(tenants, st.binary(max_size=40))
def test_a_tenant_subscription_is_applied_only_inside_its_namespace(tenant, topic):
    identity = Identity(name="x", public_key=b"k" * 40, tenant=tenant, types=("*",))
    applied = scope_subscription(topic, identity)
    assert applied is None or applied.startswith(namespace(tenant))
    # and whatever is applied, a message of another tenant never matches it
    if applied is not None:
        assert not (b"other-" + tenant.encode() + b"/event.a.b").startswith(applied)


# A small segment alphabet so that prefixes and types often share (or nearly share) segments.
segments = st.sampled_from(["a", "ab", "b", "authn", "authnx", "login", "x_1"])
type_prefixes = st.tuples(st.lists(segments, min_size=1, max_size=3), st.booleans()).map(lambda t: ".".join(t[0]) + ("." if t[1] else ""))
event_types = st.lists(segments, min_size=2, max_size=4).map(".".join)


def segment_oracle(prefix: str, event_type: str) -> bool:
    """Allowed iff the prefix's segments begin the type's ("a.b." needs a segment after them)."""
    p, t = prefix.rstrip(".").split("."), event_type.split(".")
    return t[: len(p)] == p and (len(t) > len(p) or not prefix.endswith("."))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(type_prefixes, min_size=1, max_size=3), event_types)
def test_type_scopes_match_only_on_segment_boundaries(prefixes, event_type):
    identity = Identity(name="x", public_key=b"k" * 40, tenant="t", types=tuple(prefixes))
    assert identity.may_publish(event_type) == any(segment_oracle(p, event_type) for p in prefixes)
