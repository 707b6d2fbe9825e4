"""The release stored with every attempt, and tasks tested with afterparty.testing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import Project


@pytest.mark.parametrize(("variable", "value"), [
    ("AFTERPARTY_RELEASE", "v1.4.2"), ("GITHUB_SHA", "4f9c2e1"), ("HEROKU_SLUG_COMMIT", "abc123"),
    ("CI_COMMIT_SHA", "def456"), ("RENDER_GIT_COMMIT", "0a1b2c"),
])
def test_release_comes_from_the_platform(sqlite_project: Project, variable: str, value: str) -> None:
    sqlite_project.write_task("20260101000001", "one", "print('release is', ctx.release)")
    result = sqlite_project.cli("run", extra_env={variable: value})
    assert f"release is {value}" in result.out
    attempt = json.loads(sqlite_project.cli("show", "one", "--json").out)["attempts"][0]
    assert attempt["release_id"] == value


def test_release_falls_back_to_git_head(sqlite_project: Project) -> None:
    root = sqlite_project.root
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=root, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()
    sqlite_project.write_task("20260101000001", "one")
    sqlite_project.cli("run")
    assert f"release {head}" in sqlite_project.cli("show", "one").out


def test_new_with_test_writes_a_test_that_passes(sqlite_project: Project) -> None:
    made = sqlite_project.cli("new", "notify_issue_111", "--with-test")
    assert made.code == 0, made.both
    test_path = made.out.split()[1]
    assert test_path == "tests/test_release_task_notify_issue_111.py"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_path],
                          cwd=sqlite_project.root, env=sqlite_project.env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_pytest_fixture_and_run_task_report_outcome_output_and_db_work(
        sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "grant_credit", """
        ctx.db.execute("CREATE TABLE IF NOT EXISTS credits (customer TEXT, amount INTEGER)")
        ctx.db.execute("INSERT INTO credits VALUES ('acme', 10)")
        ctx.log.info("granted %s", ctx.env)
        if ctx.env == "broken":
            raise RuntimeError("refused")
    """)
    tests = sqlite_project.root / "tests"
    tests.mkdir()
    (tests / "test_grant_credit.py").write_text('''
import sqlite3

TASK = "release_tasks/20260101000001_grant_credit.py"


def test_grants(afterparty_task):
    result = afterparty_task.run(TASK)
    assert result.succeeded and "INFO granted test" in result.output
    path = afterparty_task.database_url.split("sqlite:///", 1)[1]
    assert sqlite3.connect(path).execute("SELECT * FROM credits").fetchall() == [("acme", 10)]


def test_failure_rolls_back(afterparty_task):
    result = afterparty_task.run(TASK, env="broken")
    assert result.state == "failed" and "RuntimeError: refused" in result.error
    assert [a.state for a in result.attempts] == ["failed"]
    path = afterparty_task.database_url.split("sqlite:///", 1)[1]
    assert sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE name = 'credits'").fetchall() == []
''')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=sqlite_project.root, env=sqlite_project.env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_outside_a_repository_no_git_process_is_started(sqlite_project: Project) -> None:
    """A deploy from a directory in no git repository (an image without .git, the usual case in
    production) asks no git process for the release: not on the no-op path, not when running."""
    asked = sqlite_project.root / "git_was_asked"
    fake = sqlite_project.root / "bin"
    fake.mkdir()
    (fake / "git").write_text(f"#!/bin/sh\ntouch {asked}\nexit 1\n")
    (fake / "git").chmod(0o755)
    path = {"PATH": f"{fake}:{sqlite_project.env['PATH']}"}
    sqlite_project.write_task("20260101000001", "one", "print('release is', ctx.release)")
    ran = sqlite_project.cli("run", extra_env=path)
    assert ran.code == 0 and "release is None" in ran.out, ran.both
    assert sqlite_project.cli("run", extra_env=path).out.strip() == "no pending tasks"
    assert not asked.exists()
