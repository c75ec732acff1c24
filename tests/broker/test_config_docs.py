"""docs/operations.md stays true to the code: its complete config file is the embedded defaults,
its key table names every key with its environment variable, and its command table every command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from secbus.cli import parser
from secbus.config import DEFAULTS, env_names

OPERATIONS = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()


def test_the_complete_config_file_in_the_docs_is_the_embedded_defaults():
    block = OPERATIONS.split("A complete file with every default:", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    assert tomllib.loads(block) == DEFAULTS


def test_the_key_table_names_every_key_and_its_environment_variable():
    rows = dict(re.findall(r"^\| `([a-z_.*]+)` \|[^|]*\| `(SECBUS_[A-Z_*]+)`[^|]*\|", OPERATIONS, re.M))
    for key, env, _default in env_names():
        section = key.split(".")[0]
        if key in rows:
            assert rows[key] == env, key
        else:  # a whole section documented elsewhere: `auth.*` -> `SECBUS_AUTH_*`
            assert rows.get(f"{section}.*") == f"SECBUS_{section.upper()}_*", f"{key} is not in the table"
    documented = {key for key, _env, _default in env_names()} | {f"{key.split('.')[0]}.*" for key, _e, _d in env_names()}
    assert set(rows) <= documented, set(rows) - documented


def test_the_command_table_names_every_command_and_every_option():
    table = OPERATIONS.split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for row in re.finditer(r"^\| `secbus ([a-z]+)[^\n]*", table, re.M):
        rows[row.group(1)] = rows.get(row.group(1), "") + row.group(0)
    commands = next(a for a in parser()._actions if a.dest == "command").choices
    assert set(commands) <= set(rows), set(commands) - set(rows)
    # the paragraph under the table: "`emit`, `tail` and `ping` take `--server-key` and `--key`"
    assert "`emit`, `tail` and `ping` take `--server-key` and `--key`" in " ".join(table.split())
    keyed = {"emit", "tail", "ping"}
    for name, command in commands.items():
        row = rows[name] + (rows["events"] if "the field options of events" in rows[name] else "")
        options = {o for a in command._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        missing = {o for o in options if o not in row and not (name in keyed and o in ("--server-key", "--key"))}
        assert not missing, f"secbus {name}: {sorted(missing)} not in its row"
