"""A non-editable install ships every module: each package folder under bus/ and
handlers/ must be listed in pyproject.toml, since setuptools maps them by hand."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, name in (("bus", "secbus"), ("handlers", "secbus.handlers")):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), "package folders missing from [tool.setuptools] packages"
