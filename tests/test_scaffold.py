"""init and new: what a user starts a project with."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Project


def test_init_creates_tasks_dir_and_settings_table_once(sqlite_project: Project) -> None:
    root = sqlite_project.root
    (root / "release_tasks").rmdir()
    (root / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\n')

    first = sqlite_project.cli("init")
    assert first.code == 0, first.both
    assert (root / "release_tasks").is_dir()
    text = (root / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "app"\nversion = "1"\n')
    assert text.count("[tool.afterparty]") == 1

    second = sqlite_project.cli("init")
    assert second.code == 0
    assert "nothing to do" in second.out
    assert (root / "pyproject.toml").read_text() == text


def test_init_without_pyproject_writes_one(tmp_path: Path, sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").unlink()
    (sqlite_project.root / "release_tasks").rmdir()
    result = sqlite_project.cli("init")
    assert result.code == 0, result.both
    assert "[tool.afterparty]" in (sqlite_project.root / "pyproject.toml").read_text()


def test_init_refuses_to_append_to_broken_toml(sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").write_text("[project\nname = 1\n")
    result = sqlite_project.cli("init")
    assert result.code == 2
    assert "not valid TOML" in result.err
    assert (sqlite_project.root / "pyproject.toml").read_text() == "[project\nname = 1\n"


def test_new_writes_lowercased_file_with_description(sqlite_project: Project) -> None:
    result = sqlite_project.cli("new", "Notify Issue-111", "--description", "Notify customer about bug fix")
    assert result.code == 0, result.both
    path = sqlite_project.root / result.out.strip()
    assert path.parent == sqlite_project.tasks_dir
    assert re.fullmatch(r"\d{14}_notify_issue_111\.py", path.name)
    source = path.read_text()
    assert "@task(description='Notify customer about bug fix')" in source
    assert "# " in source  # the commented example

    again = sqlite_project.cli("new", "notify_issue_111")
    assert again.code == 2
    assert "already exists" in again.err
    assert len(list(sqlite_project.tasks_dir.glob("*.py"))) == 1


def test_new_task_runs_and_is_valid(sqlite_project: Project) -> None:
    sqlite_project.cli("new", "first")
    sqlite_project.cli("new", "second")
    versions = sorted(p.name[:14] for p in sqlite_project.tasks_dir.glob("*.py"))
    assert len(set(versions)) == 2
    assert sqlite_project.cli("check").code == 0
    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert "2 succeeded" in result.out


def test_new_refuses_a_name_without_letters(sqlite_project: Project) -> None:
    result = sqlite_project.cli("new", "!!!")
    assert result.code == 2
    assert "task name" in result.err
