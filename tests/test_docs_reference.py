"""The manual's reference against the code: the --json shapes against their JSON Schemas (real
output and the page's examples), the generated command reference against the entry point, and
every task option, ctx attribute and configuration key against its page."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from jsonschema import Draft202012Validator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: afterparty depends on tomli there
    import tomli as tomllib

import afterparty
from conftest import Project

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
SHAPES = ("run", "status", "show", "verify")


def validator(shape: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((REFERENCE / "schemas" / f"{shape}.schema.json").read_text()))


def assert_matches(shape: str, document: object, what: str) -> None:
    errors = sorted(validator(shape).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what} does not match {shape}.schema.json: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_schema_is_a_json_schema_and_is_on_the_json_page(shape: str) -> None:
    Draft202012Validator.check_schema(validator(shape).schema)
    assert f"(schemas/{shape}.schema.json)" in (REFERENCE / "json.md").read_text()


def test_the_examples_on_the_json_page_match_their_schemas() -> None:
    text = (REFERENCE / "json.md").read_text()
    sections = re.split(r"^## `afterparty (\w+)[^`]*`$", text, flags=re.M)
    shown = dict(zip(sections[1::2], sections[2::2], strict=True))
    assert set(shown) == set(SHAPES)
    for shape, section in shown.items():
        (example,) = re.findall(r"```json\n(.*?)```", section, re.S)
        assert_matches(shape, json.loads(example), f"the example of `afterparty {shape} --json`")


LONG_TASK = """
    ctx.db.execute("CREATE TABLE IF NOT EXISTS filled (n INTEGER)")
    for i in range(ctx.checkpoint.get(0), 3):
        with ctx.batch(checkpoint=i + 1):
            ctx.db.execute("INSERT INTO filled (n) VALUES (%s)", (i,))
        ctx.progress(i + 1, total=3, note="filling")
"""


def json_of(project: Project, *args: str, code: int = 0) -> object:
    result = project.cli(*args, "--json")
    assert result.code == code, result.both
    return json.loads(result.out)


def test_what_the_commands_print_matches_the_schemas(sqlite_project: Project) -> None:
    """Every state and field a script can meet: done, failed, waiting, awaiting, a long task's
    progress and checkpoint, a task for other environments, decisions in the history."""
    project = sqlite_project
    project.write_task("20260101000001", "tell_support", "print('told')")
    project.write_task("20260101000002", "long_task", LONG_TASK, options='atomic=False')
    project.write_task("20260101000003", "partner_api", "raise ConnectionError('down')")
    project.write_task("20260101000004", "restart_search", '"""Restart it."""',
                       options='manual=True, owner="ops"')
    project.write_task("20260101000005", "after_restart", "pass",
                       options='depends_on=["restart_search"]')
    project.write_task("20260101000006", "only_in_production", "pass",
                       options='environments=["production"]')

    assert_matches("run", json_of(project, "run", "--dry-run"), "run --dry-run --json")
    assert_matches("verify", json_of(project, "verify", code=6), "verify --json (nothing ran)")
    assert_matches("run", json_of(project, "run", "--keep-going", code=1), "run --json")
    assert_matches("run", json_of(project, "run", "--keep-going", code=1), "run --json (again)")
    project.cli("mark-done", "partner_api")
    status = json_of(project, "status")
    assert_matches("status", status, "status --json")
    assert {row["state"] for row in status["tasks"]} >= {"succeeded", "awaiting", "pending"}
    assert any(row["progress"] and row["checkpoint"] == 3 for row in status["tasks"])
    for version in ("20260101000002", "20260101000003", "20260101000004", "20260101000006"):
        assert_matches("show", json_of(project, "show", version), f"show {version} --json")
    assert_matches("verify", json_of(project, "verify", code=6), "verify --json")
    assert_matches("verify", json_of(project, "verify", "--allow-pending", "--allow-awaiting"),
                   "verify --allow-pending --allow-awaiting --json")
    project.cli("confirm", "restart_search")
    assert_matches("run", json_of(project, "run"), "run --json after confirm")
    assert_matches("run", json_of(project, "run"), "run --json with nothing to do")


def docs_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hook", ROOT / "docs" / "hooks" / "generated.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_reference_is_generated_from_the_entry_points_click_group() -> None:
    import click

    module_name, attribute = docs_hook().entry_point_group()
    group = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(group, click.Group)
    page = (REFERENCE / "commands.md").read_text()
    assert "<!-- generated: the command reference -->" in page
    for name in group.commands:
        assert f"| `{name}" in page, f"reference/commands.md says nothing of `afterparty {name}`"


def test_every_task_option_is_on_the_task_options_page() -> None:
    page = (REFERENCE / "task-options.md").read_text()
    options = [name for name, parameter in inspect.signature(afterparty.task).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    assert options
    for option in options:
        assert f"`{option}=" in page or f" {option}=" in page, f"@task({option}=...) is not documented"


def test_every_ctx_attribute_is_on_the_ctx_page() -> None:
    page = (REFERENCE / "ctx.md").read_text()
    internal = {"open_session", "long_task", "notices"}  # what the runner gives a Context
    attributes = {name for name in inspect.signature(afterparty.Context).parameters} - internal
    attributes |= {name for name in dir(afterparty.Context) if not name.startswith("_")}
    for attribute in sorted(attributes):
        assert f"`ctx.{attribute}" in page, f"ctx.{attribute} is not documented"


def test_every_configuration_key_is_on_the_configuration_page(sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").write_text('[tool.afterparty]\nno_such_key = 1\n')
    refused = sqlite_project.cli("status")
    assert refused.code == 2
    known = refused.err.split("known keys: ", 1)[1].split()
    page = (REFERENCE / "configuration.md").read_text()
    for key in (k.strip(",") for k in known):
        assert f"| `{key}` |" in page, f"the configuration key {key} is not documented"


def test_the_changelog_has_the_version_the_package_says() -> None:
    """One version, afterparty.__version__ (pyproject.toml reads it): the changelog names it."""
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(afterparty.__version__)}\]", changelog, re.M), \
        f"CHANGELOG.md has no section for {afterparty.__version__}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"], "pyproject.toml spells a version of its own"
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "afterparty.__version__"}
