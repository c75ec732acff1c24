"""`secbus keys generate` writes usable key files with safe modes; loose secret files are refused."""

from __future__ import annotations

import argparse
import os
import stat

import pytest
import zmq
import zmq.auth

from secbus.auth.keys import (
    KeyFileError,
    check_z85_key,
    generate,
    generate_command,
    load_public_key_file,
    load_secret_key_file,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generate_writes_secret_0600_and_public_0644_in_zmq_certificate_format(tmp_path):
    old = os.umask(0o000)  # even a permissive umask must not widen the secret file
    try:
        public_path, secret_path, public = generate("web-eu", tmp_path / "keys")
    finally:
        os.umask(old)
    assert public_path.name == "web-eu.key" and secret_path.name == "web-eu.key_secret"
    assert mode(secret_path) == 0o600
    assert mode(public_path) == 0o644
    # pyzmq reads both files, and the pair is a working CURVE pair
    pub, sec = zmq.auth.load_certificate(str(secret_path))
    assert pub == public and sec and len(sec) == 40
    assert zmq.curve_public(sec) == public
    assert zmq.auth.load_certificate(str(public_path)) == (public, None)


def test_generate_never_overwrites_an_existing_key(tmp_path):
    _, secret_path, _ = generate("broker", tmp_path)
    before = secret_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate("broker", tmp_path)
    assert secret_path.read_bytes() == before


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "-rf", "x" * 129, "sp ace"])
def test_generate_rejects_names_that_are_not_plain_file_names(tmp_path, name):
    with pytest.raises(KeyFileError, match="name"):
        generate(name, tmp_path)


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o644, 0o660, 0o610, 0o601])
def test_secret_key_file_readable_by_group_or_others_is_refused_naming_file_and_mode(tmp_path, loose):
    _, secret_path, _ = generate("broker", tmp_path)
    os.chmod(secret_path, loose)
    with pytest.raises(KeyFileError) as info:
        load_secret_key_file(secret_path)
    message = str(info.value)
    assert str(secret_path) in message and f"{loose:04o}" in message and "chmod 600" in message


def test_secret_key_file_with_0400_or_0600_loads(tmp_path):
    _, secret_path, public = generate("broker", tmp_path)
    for ok in (0o600, 0o400):
        os.chmod(secret_path, ok)
        assert load_secret_key_file(secret_path)[0] == public


def test_public_file_given_as_secret_key_is_refused_with_the_reason(tmp_path):
    public_path, _, _ = generate("broker", tmp_path)
    os.chmod(public_path, 0o600)
    with pytest.raises(KeyFileError, match="no secret-key"):
        load_secret_key_file(public_path)


def test_missing_and_garbage_key_files_get_clear_errors(tmp_path):
    with pytest.raises(KeyFileError, match="not found"):
        load_secret_key_file(tmp_path / "nope.key_secret")
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")
    with pytest.raises(KeyFileError, match="junk.key"):
        load_public_key_file(junk)


@pytest.mark.parametrize("value", ["short", "x" * 41, "\u00e9" * 40, "~" * 40])
def test_malformed_z85_keys_are_rejected_naming_the_setting(value):
    with pytest.raises(KeyFileError, match="server_key: expected a 40-character z85"):
        check_z85_key(value, "server_key")


def test_keys_generate_command_prints_public_key_and_allow_list_snippet(tmp_path, capsys):
    code = generate_command(argparse.Namespace(name="svc", dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert code == 0
    public = load_public_key_file(tmp_path / "svc.key").decode()
    assert public in out and "[[auth.clients]]" in out and 'name = "svc"' in out
    secret = load_secret_key_file(tmp_path / "svc.key_secret")[1].decode()
    assert secret not in out  # the secret never goes to the terminal
    # a second run refuses and says why
    assert generate_command(argparse.Namespace(name="svc", dir=str(tmp_path))) == 1
    assert "already exists" in capsys.readouterr().err


def test_a_malformed_secret_key_in_a_file_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "bad.key_secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'metadata\ncurve\n    public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"\n    secret-key = "TOPSECRETtopsecret"\n')
    os.close(fd)
    with pytest.raises(KeyFileError) as info:
        load_secret_key_file(path)
    assert "secret-key: expected a 40-character z85 CURVE key, got a value of length 18" in str(info.value)
    assert "TOPSECRET" not in str(info.value)
