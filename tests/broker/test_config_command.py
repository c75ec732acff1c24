"""``secbus config show|check``: what ``serve`` would run with, and a check before a restart."""

from __future__ import annotations

import tomllib

from secbus.config import DEFAULTS

from support.broker import run_secbus as secbus


def test_show_prints_the_effective_config_as_toml_with_secrets_masked(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('[http]\ntoken = "s3cr3t"\n[handlers.alert-webhook]\nurl = "https://bot:pa55@siem.example/in/s3cretpath"\n'
                      'headers = { Authorization = "Bearer abc" }\n[handlers.my-plugin]\n'
                      'dsn = "postgres://app:pa55@db.example/audit"\n')
    r = secbus("config", "show", "--config", str(config), "--ingest", "tcp://127.0.0.1:7999",
               env={"SECBUS_INGEST_MAX_BACKLOG": "5000"})
    assert r.returncode == 0, r.stderr
    shown = tomllib.loads(r.stdout)
    assert shown["ingest"]["endpoint"] == "tcp://127.0.0.1:7999" and shown["ingest"]["max_backlog"] == 5000
    assert shown["http"]["token"] == "[masked]" and "s3cr3t" not in r.stdout and "Bearer" not in r.stdout
    assert shown["handlers"]["alert-webhook"] == {"url": "https://siem.example/...", "headers": {"Authorization": "[masked]"}}
    assert shown["handlers"]["my-plugin"] == {"dsn": "postgres://app:[masked]@db.example/audit"}
    assert "pa55" not in r.stdout and "s3cretpath" not in r.stdout
    assert shown["auth"]["server_secret_key_file"] == ""  # a path to a secret is shown (here: none)
    assert shown["log"] == DEFAULTS["log"] and shown["limits"] == DEFAULTS["limits"]


def test_show_sources_names_the_file_the_variable_and_the_flag(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('[correlation]\ntrace_idle_ms = 900\n')
    r = secbus("config", "show", "--sources", "--config", str(config), "--data-dir", str(tmp_path / "d"),
               env={"SECBUS_FEED_SNDHWM": "77"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"correlation.trace_idle_ms = 900  # file {config}" in lines
    assert "feed.sndhwm = 77  # environment SECBUS_FEED_SNDHWM" in lines
    assert f'data_dir = "{tmp_path / "d"}"  # command line' in lines
    assert 'ingest.endpoint = "tcp://127.0.0.1:7878"  # default' in lines


def test_check_passes_on_the_defaults_and_names_the_handlers(tmp_path):
    r = secbus("config", "check", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "audit, metrics, alerting, alert-log" in r.stdout and str(tmp_path) in r.stdout


def test_check_names_a_data_dir_serve_could_not_use_and_notes_one_open_to_others(tmp_path):
    new = tmp_path / "new" / "data"  # created by serve: fine, nothing created by the check
    r = secbus("config", "check", "--data-dir", str(new))
    assert r.returncode == 0 and f"data in {new} (" in r.stdout and " free)" in r.stdout, r.stderr
    assert not new.exists()

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = secbus("config", "check", "--data-dir", str(a_file))
    assert r.returncode == 2 and f"data dir {a_file} is not a directory" in r.stderr

    damaged = tmp_path / "damaged"
    damaged.mkdir(mode=0o700)
    (damaged / "events.db").write_bytes(b"not a database at all, but long enough to be read as one")
    r = secbus("config", "check", "--data-dir", str(damaged))
    assert r.returncode == 2 and f"the event log in {damaged} cannot be used: file is not a database" in r.stderr

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    r = secbus("config", "check", "--data-dir", str(shared))
    assert r.returncode == 0 and f"data dir {shared} is open to other users (mode 755); chmod 700 it" in r.stdout


def test_check_fails_on_a_handler_that_is_not_installed(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('[handlers]\nenabled = ["audit", "siem-forwarder"]\n')
    r = secbus("config", "check", "--config", str(config))
    assert r.returncode == 2
    assert "handler 'siem-forwarder': not installed (installed handlers: " in r.stderr
    assert r.stderr.count("siem-forwarder") == 1, r.stderr  # said once, not logged twice


def test_check_names_each_bad_handler_setting_and_a_broken_rules_file_without_touching_the_data_dir(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "mine"\nkind = "match"\nseverity = "urgent"\nwhere = { type = "authn.login" }\n')
    config = tmp_path / "broker.toml"
    config.write_text(
        '[handlers]\nenabled = ["audit", "metrics", "alerting", "alert-webhook", "alert-syslog"]\n'
        f'[handlers.alerting]\nrules = "{rules}"\n'
        '[handlers.audit]\nfsync = "sometimes"\n'
        '[handlers.metrics]\nmax_label_value = 5\n'
        '[handlers.alert-webhook]\nurl = "https://hooks.example/T0/B0/s3cretpath"\nheaders = { Authorization = 7 }\n'
        '[handlers.alert-syslog]\naddress = "siem.example:6514"\nprotocol = "tcp"\n'  # a good one: not named
    )
    data = tmp_path / "data"
    r = secbus("config", "check", "--config", str(config), "--data-dir", str(data))
    assert r.returncode == 2
    problems = r.stderr.strip().splitlines()
    assert problems == [
        "secbus config check: handler 'audit': [handlers.audit] fsync: expected one of 'batch', 'interval', got 'sometimes'",
        "secbus config check: handler 'metrics': [handlers.metrics]: unknown setting(s) 'max_label_value'; known: max_label_values, path, sdk_report_ttl",
        f"secbus config check: handler 'alerting': {rules}: rule 'mine': severity: expected one of info, low, medium, high, critical, "
        "event, got 'urgent'",
        "secbus config check: handler 'alert-webhook': [handlers.alert-webhook] headers: expected a table of header = \"value\" "
        "strings, got {'Authorization': '[masked]'}",
    ], r.stderr
    assert "s3cret" not in r.stderr
    assert not data.exists()  # checked, not started: no audit dir, no writer process, no state db

    rules.write_text('[[rule]]\nname = "mine"\nkind = "match"\nseverity = "high"\nwhere = { type = "authn.login" }\n')
    config.write_text(f'[handlers]\nenabled = ["audit", "alerting"]\n[handlers.alerting]\nrules = "{rules}"\n')
    r = secbus("config", "check", "--config", str(config), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert "handlers audit, alerting\n" in r.stdout and not data.exists()


def test_check_says_which_handlers_check_their_own_settings_only_at_start(tmp_path, recorder_installed):
    config = tmp_path / "broker.toml"
    config.write_text('[handlers]\nenabled = ["audit", "recorder"]\n')
    r = secbus("config", "check", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert r.returncode == 0, r.stderr
    assert "handlers audit, recorder (recorder: own settings checked when they start)" in r.stdout


def test_check_fails_on_an_insecure_bind_and_a_missing_key_file(tmp_path):
    r = secbus("config", "check", "--ingest", "tcp://0.0.0.0:7878")
    assert r.returncode == 2 and "ingest: refusing to listen on tcp://0.0.0.0:7878 without CURVE" in r.stderr
    config = tmp_path / "broker.toml"
    config.write_text('[auth]\nserver_secret_key_file = "missing.key_secret"\n')
    r = secbus("config", "check", "--config", str(config))
    assert r.returncode == 2 and "auth.server_secret_key_file:" in r.stderr, r.stderr


def test_a_bad_config_value_names_the_key_and_exits_2(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('[log]\ndurability = "sometimes"\n')
    for action in ("show", "check"):
        r = secbus("config", action, "--config", str(config))
        assert r.returncode == 2 and "log.durability: expected one of normal, fsync, got 'sometimes'" in r.stderr
