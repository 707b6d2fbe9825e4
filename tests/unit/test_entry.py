"""Which command lines the entry point's quick look may answer: a plain ``run``, with the
flags that choose the records and the options that change nothing when there is nothing to do."""

from __future__ import annotations

import pytest

from afterparty.entry import plain_run


@pytest.mark.parametrize(("args", "flags"), [
    (["run"], {}),
    (["--env", "production", "run"], {"environment": "production"}),
    (["run", "--env=production", "--tasks-dir", "deploy/tasks"],
     {"environment": "production", "tasks_dir": "deploy/tasks"}),
    (["--database-url", "sqlite:///x.db", "--table-prefix", "ap_", "run"],
     {"database_url": "sqlite:///x.db", "table_prefix": "ap_"}),
    (["run", "--wait", "600", "--no-input", "--keep-going", "--if-busy=skip"], {}),
])
def test_a_plain_run_is_answered_by_the_quick_look(args: list[str], flags: dict[str, str]) -> None:
    assert plain_run(args) == flags


@pytest.mark.parametrize("args", [
    [], ["status"], ["run", "run"], ["run", "20260101000001"], ["run", "--dry-run"],
    ["run", "--json"], ["run", "--group", "search"], ["run", "--wait-background"],
    ["-v", "run"], ["--verbose", "run"], ["run", "-h"], ["--color", "run"],
    ["run", "--env"], ["run", "--env", "--no-input"], ["run", "--env="],
    ["run", "--env", "a", "--env", "b"], ["run", "--no-input", "--no-input"],
    ["run", "--wait", "soon"], ["run", "--wait", "-1"], ["run", "--if-busy", "maybe"],
    ["run", "--no-input=yes"], ["--connect-timeout", "5", "run"],
])
def test_anything_else_goes_to_the_command_line(args: list[str]) -> None:
    assert plain_run(args) is None
