"""Security.from_config: the [auth], [http] token and rate settings, with errors that name the setting."""

from __future__ import annotations

import os

import pytest

from secbus.auth.binding import InsecureBindError
from secbus.auth.security import Security, SecurityError

from .helpers import KeyPair


def config(tmp_path, **auth):
    return {"config_path": str(tmp_path / "secbus.toml"), "auth": auth, "http": {"address": "127.0.0.1:0"}, "ingest": {}, "limits": {"max_batch_events": 1000}}


def test_server_key_file_relative_to_config_turns_curve_on(tmp_path):
    broker, web = KeyPair(tmp_path, "broker"), KeyPair(tmp_path, "web")
    sec = Security.from_config(
        config(tmp_path, server_secret_key_file="broker.key_secret", clients=[{"name": "web", "public_key_file": "web.key", "tenant": "acme", "types": ["*"]}])
    )
    assert sec.curve and sec.server_public == broker.public and sec.allow_list.by_key(web.public).name == "web"
    assert sec.check_binds("tcp://0.0.0.0:1", "tcp://0.0.0.0:2", None)[0].startswith("security: CURVE on")


def test_loose_server_key_is_refused_at_start_naming_the_setting_and_file(tmp_path):
    broker = KeyPair(tmp_path, "broker")
    os.chmod(broker.secret_path, 0o644)
    with pytest.raises(SecurityError, match=r"auth.server_secret_key_file: .*broker.key_secret: mode 0644 is too open"):
        Security.from_config(config(tmp_path, server_secret_key_file=str(broker.secret_path)))


def test_allow_list_without_server_key_is_an_error_not_an_open_door(tmp_path):
    web = KeyPair(tmp_path, "web")
    with pytest.raises(SecurityError, match="auth.server_secret_key_file is not"):
        Security.from_config(config(tmp_path, clients=[{"name": "web", "public_key": web.public_text, "tenant": "acme", "types": ["*"]}]))


def test_no_curve_refuses_non_loopback_binds_for_zmq_and_http(tmp_path):
    sec = Security.from_config(config(tmp_path))
    assert not sec.curve
    assert "grasslands" in sec.check_binds("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "127.0.0.1:3")[0]
    with pytest.raises(InsecureBindError, match="ingest"):
        sec.check_binds("tcp://0.0.0.0:1", "tcp://127.0.0.1:2", "127.0.0.1:3")
    with pytest.raises(InsecureBindError, match="feed"):
        sec.check_binds("tcp://127.0.0.1:1", "tcp://*:2", "127.0.0.1:3")
    with pytest.raises(InsecureBindError, match=r"http: .*bearer token"):
        sec.check_binds("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "0.0.0.0:3")
    insecure = Security.from_config(config(tmp_path, allow_insecure=True))
    warnings = insecure.check_binds("tcp://0.0.0.0:1", "tcp://127.0.0.1:2", "0.0.0.0:3")
    assert sum(w.startswith("WARNING") for w in warnings) == 2


def test_http_token_makes_a_non_loopback_http_bind_acceptable(tmp_path):
    cfg = config(tmp_path)
    cfg["http"]["token"] = "t0ken"
    sec = Security.from_config(cfg)
    assert not [w for w in sec.check_binds("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "0.0.0.0:3") if "WARNING" in w]
    assert "t0ken" not in repr(sec.stats())


def test_auth_settings_come_from_the_toml_file_and_the_environment(tmp_path):
    from secbus.config import ConfigError, load

    web = KeyPair(tmp_path, "web")
    broker = KeyPair(tmp_path, "broker")
    path = tmp_path / "secbus.toml"
    path.write_text(
        '[auth]\nserver_secret_key_file = "broker.key_secret"\n'
        f'[[auth.clients]]\nname = "web"\npublic_key = "{web.public_text}"\ntenant = "acme"\ntypes = ["authn."]\n'
    )
    config = load(path, environ={"SECBUS_HTTP_TOKEN": "from-env", "SECBUS_INGEST_RATE_PER_PUBLISHER": "50"})
    sec = Security.from_config(config)
    assert sec.curve and sec.server_public == broker.public and sec.allow_list.by_name("web").tenant == "acme"
    assert sec.http_token == "from-env" and sec.rate_limiter.rate == 50
    path.write_text('[auth]\nserver_key_file = "x"\n')
    with pytest.raises(ConfigError, match="auth.server_key_file: unknown option"):
        load(path, environ={})


def test_a_bad_client_key_file_is_named_as_the_client_entry_not_the_server_key(tmp_path):
    KeyPair(tmp_path, "broker")
    cfg = config(tmp_path, server_secret_key_file="broker.key_secret",
                 clients=[{"name": "web", "public_key_file": "missing.key", "tenant": "acme", "types": ["*"]}])
    with pytest.raises(SecurityError, match=r"^auth.clients\[0\] \(web\).public_key_file: .*missing.key"):
        Security.from_config(cfg)
