"""The Python SDK takes CURVE keys as values or as the files `secbus keys generate` writes."""

from __future__ import annotations

import os

import pytest

from secbus_sdk import Client

from .helpers import KeyPair



@pytest.fixture
def pairs(tmp_path):
    return KeyPair(tmp_path, "broker"), KeyPair(tmp_path, "web")


def test_key_files_and_values_give_the_same_curve_keys(tmp_path, pairs):
    from secbus_sdk.client import _curve_keys

    broker, web = pairs
    from_files = _curve_keys(broker.public_path, None, web.secret_path)
    from_strings = _curve_keys(str(broker.public_path), None, str(web.secret_path))
    from_values = _curve_keys(broker.public_text, web.public_text, web.secret_text)
    assert from_files == from_strings == from_values == (broker.public, web.public, web.secret)


def test_sdk_refuses_a_secret_key_file_readable_by_others(tmp_path, pairs):
    broker, web = pairs
    os.chmod(web.secret_path, 0o644)
    with pytest.raises(ValueError, match=r"secret_key: .*web.key_secret: mode 0644 is too open"):
        Client(endpoint="tcp://127.0.0.1:1", service="t", spool_dir=str(tmp_path / "spool"), server_key=str(broker.public_path), secret_key=str(web.secret_path))


def test_sdk_refuses_a_public_file_as_secret_key_and_missing_files_without_echoing(tmp_path, pairs):
    from secbus_sdk.client import _curve_keys

    broker, web = pairs
    os.chmod(web.public_path, 0o600)
    with pytest.raises(ValueError, match="holds no secret-key"):
        _curve_keys(broker.public_path, None, web.public_path)
    with pytest.raises(ValueError, match="server_key: expected a 40-character Z85 CURVE key or an existing key file") as info:
        _curve_keys(str(tmp_path / "nope.key"), None, None)
    assert "nope.key" in str(info.value)
