"""docs/operations.md stays true to the code: its complete config file is the embedded defaults,
and its key table names every key with its environment variable."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
