"""The CLI's CURVE options (--server-key, --key, SECBUS_SERVER_KEY, SECBUS_CLIENT_KEY): values,
files, and a clear error for every wrong combination."""

from __future__ import annotations

import argparse
import os

import pytest

from secbus.auth.client import client_curve
from secbus.auth.keys import KeyFileError

from .helpers import KeyPair


def ns(**kw):
    return argparse.Namespace(server_key=kw.get("server_key"), key=kw.get("key"))


@pytest.fixture
def pairs(tmp_path):
    return KeyPair(tmp_path, "broker"), KeyPair(tmp_path, "web")


def test_no_options_means_a_plain_connection():
    assert client_curve(ns(), environ={}) is None


def test_server_key_as_value_or_file_and_client_key_file(pairs):
    broker, web = pairs
    expected = (broker.public, web.public, web.secret)
    assert client_curve(ns(server_key=broker.public_text, key=str(web.secret_path)), environ={}) == expected
    assert client_curve(ns(server_key=str(broker.public_path), key=str(web.secret_path)), environ={}) == expected
    env = {"SECBUS_SERVER_KEY": str(broker.public_path), "SECBUS_CLIENT_KEY": str(web.secret_path)}
    assert client_curve(ns(), environ=env) == expected


def test_wrong_combinations_and_files_are_named(tmp_path, pairs):
    broker, web = pairs
    with pytest.raises(KeyFileError, match="--key: a client key needs --server-key"):
        client_curve(ns(key=str(web.secret_path)), environ={})
    with pytest.raises(KeyFileError, match="--server-key: give this client's key too"):
        client_curve(ns(server_key=broker.public_text), environ={})
    with pytest.raises(KeyFileError, match="nope.key"):
        client_curve(ns(server_key=str(tmp_path / "nope.key"), key=str(web.secret_path)), environ={})
    os.chmod(web.secret_path, 0o644)
    with pytest.raises(KeyFileError, match="mode 0644 is too open"):
        client_curve(ns(server_key=broker.public_text, key=str(web.secret_path)), environ={})
