"""``secbus.shown``: what logs, errors, /healthz and ``config show`` print of a config value."""

from __future__ import annotations

import pytest

from secbus.shown import shown_setting, shown_url


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.slack.com/services/T0/B0/s3cret", "https://hooks.slack.com/..."),
    ("http://127.0.0.1:8080/hook?token=s3cret", "http://127.0.0.1:8080/..."),
    ("https://bot:s3cret@siem.example", "https://siem.example/..."),
    ("https://siem.example/", "https://siem.example"),
    ("http://[::1]:9000/s3cret", "http://[::1]:9000/..."),
    ("https://siem.example:notaport/s3cret", "https://siem.example/..."),
    ("bot:s3cret@hooks.example/services/s3cret", "hooks.example/..."),
])
def test_a_url_is_shown_by_scheme_host_and_port(url, shown):
    assert shown_url(url) == shown


def test_a_setting_is_shown_without_its_secrets():
    settings = {"token": "s3cret", "api_key": "s3cret", "server_secret_key_file": "keys/b.key_secret",
                "headers": {"X-Api-Key": "s3cret"}, "url": "https://h.example/s3cret",
                "dsn": "postgres://app:s3cret@db.example/x", "endpoint": "ipc:///run/secbus/ingest",
                "clients": [{"name": "app", "password": "s3cret"}], "empty_token": ""}
    assert shown_setting("", settings) == {
        "token": "[masked]", "api_key": "[masked]", "server_secret_key_file": "keys/b.key_secret",
        "headers": {"X-Api-Key": "[masked]"}, "url": "https://h.example/...",
        "dsn": "postgres://app:[masked]@db.example/x", "endpoint": "ipc:///run/secbus/ingest",
        "clients": [{"name": "app", "password": "[masked]"}], "empty_token": ""}
