"""The [[auth.clients]] allow-list: every entry mistake is named; type prefixes match on segment boundaries."""

from __future__ import annotations

import pytest

from secbus.auth.allowlist import AllowListError, parse_allow_list

from .helpers import KeyPair


@pytest.fixture
def pair(tmp_path):
    return KeyPair(tmp_path, "web")


def entry(pair, **over):
    base = {"name": "web", "public_key": pair.public_text, "tenant": "acme", "types": ["authn."]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_entry_maps_key_to_name_tenant_types_and_admin(pair):
    allow = parse_allow_list([entry(pair, admin=True)])
    ident = allow.by_key(pair.public)
    assert (ident.name, ident.publisher, ident.tenant, ident.types, ident.admin) == ("web", "web", "acme", ("authn.",), True)
    assert allow.by_name("web") is ident and allow.by_name("other") is None


def test_public_key_file_relative_to_the_config_directory(tmp_path, pair):
    allow = parse_allow_list([entry(pair, public_key=None, public_key_file="web.key")], base_dir=tmp_path)
    assert allow.by_key(pair.public).name == "web"


@pytest.mark.parametrize(
    "types, allowed, refused",
    [
        (["authn."], ["authn.login", "authn.mfa.totp"], ["authz.check", "authnx.login"]),
        (["authn"], ["authn.login"], ["authnx.login", "authz.check"]),
        (["authn.login"], ["authn.login", "authn.login.sso"], ["authn.loginx", "authn.logout"]),
        (["*"], ["authn.login", "config.change"], []),
        (["authz.", "config.key."], ["authz.check", "config.key.rotate"], ["config.change", "authn.login"]),
    ],
)
def test_type_prefixes_match_on_segment_boundaries(pair, types, allowed, refused):
    ident = parse_allow_list([entry(pair, types=types)]).by_name("web")
    assert all(ident.may_publish(t) for t in allowed)
    assert not any(ident.may_publish(t) for t in refused)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"name": None}, r"auth.clients\[0\].name: required"),
        ({"name": "a b"}, r"auth.clients\[0\].name: expected"),
        ({"tenant": None}, r"\(web\).tenant: required"),
        ({"tenant": "Acme"}, r"\(web\).tenant: expected .* got 'Acme'"),
        ({"tenant": "a/b"}, r"tenant: expected"),
        ({"tenant": "_x"}, r"tenant: expected"),
        ({"types": None}, r"types: required"),
        ({"types": []}, r"types: empty"),
        ({"types": ["AUTHN."]}, r"types\[0\]: expected .* got 'AUTHN.'"),
        ({"types": "authn."}, r"types: expected list"),
        ({"admin": "yes"}, r"admin: expected bool"),
        ({"public_key": "abc"}, r"public_key: expected a 40-character z85 CURVE key, got 'abc'"),
        ({"public_key": None}, r"give exactly one of public_key or public_key_file"),
        ({"public_key_file": "/nonexistent/web.key"}, r"give exactly one"),
        ({"colour": "blue"}, r"auth.clients\[0\].colour: unknown field"),
    ],
)
def test_bad_entries_are_refused_naming_entry_and_field(pair, over, message):
    with pytest.raises(AllowListError, match=message):
        parse_allow_list([entry(pair, **over)])


def test_missing_public_key_file_is_named(pair, tmp_path):
    with pytest.raises(AllowListError, match=r"auth.clients\[0\] \(web\).public_key_file: .*nope.key"):
        parse_allow_list([entry(pair, public_key=None, public_key_file=str(tmp_path / "nope.key"))])


def test_one_key_one_identity_and_unique_names(tmp_path, pair):
    other = KeyPair(tmp_path, "other")
    with pytest.raises(AllowListError, match=r"auth.clients\[1\].public_key: the key of 'web2' is already given to auth.clients\[0\]"):
        parse_allow_list([entry(pair), entry(pair, name="web2")])
    with pytest.raises(AllowListError, match=r"auth.clients\[1\].name: 'web' is already used"):
        parse_allow_list([entry(pair), entry(other)])


def test_clients_must_be_an_array_of_tables():
    with pytest.raises(AllowListError, match="expected an array of tables"):
        parse_allow_list({"name": "x"})
    with pytest.raises(AllowListError, match=r"auth.clients\[0\]: expected a table"):
        parse_allow_list(["x"])
