"""The plain reader of [tool.afterparty] (the no-op look's) answers what tomllib answers, or
leaves the file to tomllib: never a different table."""

from __future__ import annotations

import itertools
import sys

import pytest

from afterparty.pyproject import plain_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECT = '[project]\nname = "shop"\ndependencies = ["afterparty[postgres]>=0.1", "django"]\n'
TABLES = [
    "",
    "[tool.afterparty]\n",
    '[tool.afterparty]\ntasks_dir = "deploy/tasks"\nenvironment = \'production\'  # a comment\n',
    '[ tool . afterparty ] # ours\n\n# a comment\ntable_prefix = "ap_"\nnotify_summary = true\n',
    '[tool.afterparty]\ndatabase_url = "sqlite:///var/records.sqlite3"\ncelery_app = "shop:app"\n',
]
OTHERS = [
    "",
    '[tool.ruff]\nline-length = 110\nselect = [\n  "E",\n  "afterparty",\n]\n',
    '[tool.pytest.ini_options]\naddopts = "-p afterparty.pytest_plugin"\n',
    '[[tool.mypy.overrides]]\nmodule = "afterparty.*"\nignore_missing_imports = true\n',
]
# Files only a TOML parser can read right: the plain reader must leave each to tomllib.
LEFT_TO_TOMLLIB = [
    '[tool.afterparty]\nnotify = ["slack://a", "mailto://b"]\n',
    '[tool.afterparty]\nenvironment = "prod\\u0075ction"\n',
    '[tool.afterparty]\n[tool.afterparty.web]\nusers = "x"\n',
    '[tool.afterparty]\nweb = { users = "x" }\n',
    '[tool]\nafterparty.environment = "production"\n',
    'tool.afterparty.environment = "production"\n',
    'tool = { afterparty = { environment = "production" } }\n',
    '[tool."afterparty"]\nenvironment = "production"\n',
    '[tool.afterparty]\nenvironment = "a"\n[tool.afterparty]\ntasks_dir = "b"\n',
    '[tool.afterparty]\nenvironment = "a"\nenvironment = "b"\n',
    '[tool.afterparty]\nenvironment = """production"""\n',
    '[project]\ndescription = """\n[tool.afterparty]\nenvironment = "x"\n"""\n',
    '[tool.afterparty]\n"environment" = "production"\n',
    '[tool.afterparty]\nenvironment.name = "production"\n',
    '[tool.afterparty]\nnotify_summary = 1\n',
    '[[tool.afterparty]]\nenvironment = "production"\n',
]


def tomllib_table(text: str) -> object:
    return tomllib.loads(text).get("tool", {}).get("afterparty", {})


@pytest.mark.parametrize(("table", "other", "order"),
                         list(itertools.product(TABLES, OTHERS, ("table first", "table last"))))
def test_a_plain_table_reads_as_tomllib_reads_it(table: str, other: str, order: str) -> None:
    text = PROJECT + (table + other if order == "table first" else other + table)
    assert plain_table(text.encode()) == tomllib_table(text)


@pytest.mark.parametrize("text", LEFT_TO_TOMLLIB)
def test_what_only_a_parser_can_tell_is_left_to_tomllib(text: str) -> None:
    assert plain_table((PROJECT + text).encode()) is None


def test_a_file_that_is_not_utf_8_is_left_to_tomllib() -> None:
    assert plain_table(b'[tool.afterparty]\nenvironment = "\xff"\n') is None
