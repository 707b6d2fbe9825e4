"""One definition of pending for the no-op check and the plan; limits and passwords that every
backend treats alike, checked before anything connects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import Project

TASK_RUNNERS_ONLY = ("afterparty.attempt", "afterparty_tasks")


def imported(project: Project, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "afterparty", *args],
                          cwd=project.root, env=project.env, capture_output=True, text=True,
                          timeout=60, check=False)
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")}
    return done, modules


def test_the_no_op_check_and_the_plan_agree_on_what_is_pending(project: Project) -> None:
    """Sub-folders, tasks for another environment and options in comments: the no-op path
    stays fast and the plan runs exactly what it should."""
    ledger = project.root / "ledger.txt"
    (project.tasks_dir / "helpers").mkdir()
    (project.tasks_dir / "helpers" / "shared.py").write_text("X = 1\n")
    (project.tasks_dir / "__pycache__").mkdir()
    write = f"open({str(ledger)!r}, 'a').write(ctx.name + '\\n')"
    project.write_task("20260101000001", "everywhere", write)
    project.write_task("20260101000002", "staging_only", write,
                       options='environments=["staging"], description="staging"')
    project.write_task("20260101000003", "commented", write, header="""
        # environments=["staging"]  (an old note, not an option)
        NOTE = 'environments=["staging"]'
    """)

    first = project.cli("run")
    assert first.code == 0, first.both
    assert ledger.read_text().split() == ["everywhere", "commented"]
    status = project.cli("status").out
    assert "staging_only" in status and "not for this environment" in status

    done, modules = imported(project, "run")
    assert done.returncode == 0 and "no pending tasks" in done.stdout
    for module in TASK_RUNNERS_ONLY:
        assert not any(m == module or m.startswith(module + ".") for m in modules), module

    staging = project.cli("--env", "staging", "run")
    assert staging.code == 0, staging.both
    assert ledger.read_text().split() == ["everywhere", "commented", "staging_only"]


def test_options_that_are_not_literals_are_decided_by_importing(sqlite_project: Project) -> None:
    """The no-op check never guesses: a computed option makes it import and decide."""
    sqlite_project.write_task("20260101000001", "computed", "print('ran')",
                              header="ENVS = ['staging']",
                              options='environments=ENVS, description="computed"')
    result = sqlite_project.cli("run")
    assert result.code == 0 and "ran" not in result.out
    assert "\nran\n" in sqlite_project.cli("--env", "staging", "run").out


@pytest.mark.parametrize("option, value", [("--env", "e" * 256), ("--env", "")])
def test_environment_names_have_the_same_limits_everywhere(sqlite_project: Project,
                                                             option: str, value: str) -> None:
    """Checked before connecting: an unreachable server still gives the usage error."""
    result = sqlite_project.cli("--database-url", "postgresql://nobody@127.0.0.1:1/nothing",
                                "--connect-timeout", "1", option, value, "run")
    assert result.code == 2, result.both
    assert len(result.err.strip().splitlines()) == 1
    assert "environment" in result.err


def test_a_release_id_too_long_for_the_records_is_refused(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "one")
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r" * 300})
    assert result.code == 2, result.both
    assert "AFTERPARTY_RELEASE" in result.err and "255" in result.err
    assert not (sqlite_project.root.parent / "records.sqlite3").exists()


def test_a_table_prefix_with_a_trailing_newline_is_refused(sqlite_project: Project) -> None:
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_TABLE_PREFIX": "ap_\n"})
    assert result.code == 2, result.both
    assert "table prefix" in result.err


@pytest.mark.parametrize("password", ["Pa/ss", "Pa#ss", "Pa?ss", "Pa:ss/#?"])
def test_passwords_with_url_characters_are_never_printed(sqlite_project: Project,
                                                          password: str) -> None:
    from urllib.parse import quote

    for url in (f"postgresql://deploy:{password}@127.0.0.1:abc/db",
                f"mysql://deploy:{password}@127.0.0.1:1/db",
                f"postgresql://deploy:{quote(password, safe='')}@127.0.0.1:1/db"):
        for args in (["status"], ["status", "--json"], ["-v", "run"]):
            result = sqlite_project.cli("--database-url", url, "--connect-timeout", "1", *args)
            assert result.code in (2, 4), result.both
            assert password not in result.both and quote(password, safe="") not in result.both
            assert "Traceback" in result.err or len(result.err.strip().splitlines()) == 1


def test_a_password_in_the_query_string_is_not_shown_by_status(sqlite_project: Project,
                                                                postgresql_url: str) -> None:
    url = f"{postgresql_url}?password=s3cret-in-query&application_name=deploy"
    result = sqlite_project.cli("--database-url", url, "status", "--json")
    assert result.code == 0, result.both
    assert "s3cret-in-query" not in result.both
    assert "password=***" in json.loads(result.out)["database"]
