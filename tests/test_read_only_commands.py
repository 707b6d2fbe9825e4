"""Commands that only look (status, show, check, verify) create nothing and answer despite a
stray file in the tasks directory, which `run` and `check` refuse."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Project


def database_file(project: Project) -> Path:
    return Path(project.database_url.split("sqlite:///", 1)[1])


def test_looking_at_a_new_environment_creates_no_database_file(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "tell_support")
    db = database_file(sqlite_project)
    status = sqlite_project.cli("status")
    assert status.code == 0, status.both
    assert "tell_support" in status.out and "pending" in status.out
    assert "no records yet" in status.err
    shown = sqlite_project.cli("show", "tell_support")
    assert shown.code == 0, shown.both
    assert "no attempts yet" in shown.out
    as_json = sqlite_project.cli("status", "--json")
    assert json.loads(as_json.out)["tasks"][0]["state"] == "pending"
    assert sqlite_project.cli("check").code == 0
    assert sqlite_project.cli("verify").code == 6
    assert not db.exists(), "a command that only looks created the database file"
    assert sqlite_project.cli("run").code == 0
    assert db.exists()
    assert "no records yet" not in sqlite_project.cli("status").err


def test_a_stray_file_is_named_by_status_and_show_and_refused_by_run_and_check(
        project: Project) -> None:
    project.write_task("20260101000001", "tell_support")
    (project.tasks_dir / "notes.txt").write_text("remember the milk\n")
    status = project.cli("status")
    assert status.code == 0, status.both
    assert "tell_support" in status.out
    assert "notes.txt: not a task file name" in status.err
    report = json.loads(project.cli("status", "--json").out)
    assert any("notes.txt" in problem for problem in report["problems"])
    shown = project.cli("show", "20260101000001")
    assert shown.code == 0, shown.both
    assert "notes.txt" in shown.err
    for refusing in (("run",), ("check",)):
        result = project.cli(*refusing)
        assert result.code == 2, result.both
        assert "notes.txt" in result.err
