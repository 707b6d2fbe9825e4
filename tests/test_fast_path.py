"""The no-op path every deploy takes: no task file, no other driver, no extras imported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from conftest import Project, Result, stop, wait_until

NEVER_ON_THE_NO_OP_PATH = ("afterparty_tasks", "apprise", "django", "flask", "sqlalchemy",
                           "starlette", "jinja2", "celery", "afterparty.web",
                           "afterparty.contrib.celery", "afterparty.long_tasks",
                           # the runner and what it needs only when there is work to do
                           "afterparty.attempt", "afterparty.graph", "afterparty.definition",
                           "afterparty.context",
                           "afterparty.capture", "afterparty.notify")
# The command line: a plain `run` with nothing to do is answered before it is imported.
NEVER_BEFORE_THE_QUICK_LOOK_ANSWERS = ("click", "afterparty.cli", "afterparty.executor",
                                       "afterparty.lock", "afterparty.session",
                                       "afterparty.recorder", "tomllib")
# What the no-op imports nothing else would, by backend: what its driver does not import
# itself (psycopg imports typing, dataclasses and inspect; PyMySQL hashlib).
NEVER_ON_THE_NO_OP_PATH_OF = {"sqlite": ("typing", "dataclasses", "inspect", "hashlib"),
                              "postgresql": ("hashlib",), "mysql": ()}
DRIVERS = {"sqlite": "sqlite3", "postgresql": "psycopg", "mysql": "pymysql"}


def imported_modules(project: Project, *args: str) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "afterparty", *args], cwd=project.root,
        env=project.env, capture_output=True, text=True, timeout=60, check=False,
    )
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")}
    return done.returncode, modules, done.stdout


def test_no_op_run_imports_no_task_file_and_only_its_own_driver(project: Project) -> None:
    marker = project.root / "imported"
    for n in range(5):
        project.write_task(f"2026010100000{n}", f"task_{n}",
                           header=f"open({str(marker)!r}, 'a').write('x')\n")
    assert project.cli("run").code == 0
    marker.unlink()

    code, modules, out = imported_modules(project, "run")
    assert code == 0 and "no pending tasks" in out
    assert not marker.exists()
    backend = project.database_url.split(":", 1)[0]
    assert DRIVERS[backend] in modules
    for other, driver in DRIVERS.items():
        if other != backend:
            assert not any(m == driver or m.startswith(driver + ".") for m in modules), driver
    never = (NEVER_ON_THE_NO_OP_PATH + NEVER_BEFORE_THE_QUICK_LOOK_ANSWERS
             + NEVER_ON_THE_NO_OP_PATH_OF[backend])
    for name in never:
        assert not any(m == name or m.startswith(name + ".") for m in modules), name


def test_pending_run_imports_only_pending_task_files(project: Project) -> None:
    marker = project.root / "imported"
    project.write_task("20260101000001", "old", header=f"open({str(marker)!r}, 'a').write('old')\n")
    assert project.cli("run").code == 0
    marker.unlink()
    project.write_task("20260101000002", "new", header=f"open({str(marker)!r}, 'a').write('new')\n")
    assert project.cli("run").code == 0
    assert marker.read_text() == "new"


# --- the quick look (afterparty.entry) and the command line agree ------------------------------

# The command line itself, without the entry point's quick look.
COMMAND_LINE = "import sys; from afterparty.cli import main; main(sys.argv[1:], prog_name='afterparty')"


def _records_copy(project: Project) -> str:
    """A copy of the project's SQLite records, for the command line to run on unchanged."""
    import sqlite3

    source = project.database_url.split("sqlite:///", 1)[1]
    copy = f"{source}.copy"
    with sqlite3.connect(source) as original, sqlite3.connect(copy) as duplicate:
        original.backup(duplicate)
    original.close()
    duplicate.close()
    return f"sqlite:///{copy}"


def answers(project: Project, env: dict[str, str],
            args: tuple[str, ...] = ("run",)) -> tuple[Result, Result, bool]:
    """What the command line says to ``run`` on a copy of the records, what ``afterparty run``
    says, and whether the quick look answered it (click never imported)."""
    copy_env = {**project.env, **env, "AFTERPARTY_DATABASE_URL": _records_copy(project)}
    full = subprocess.run([sys.executable, "-c", COMMAND_LINE, *args], cwd=project.root,
                          env=copy_env, capture_output=True, text=True, timeout=60, check=False)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "afterparty", *args],
                          cwd=project.root, env={**project.env, **env}, capture_output=True,
                          text=True, timeout=60, check=False)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    err = "".join(line + "\n" for line in done.stderr.splitlines()
                  if not line.startswith("import time:"))
    return (Result(full.returncode, full.stdout, full.stderr), Result(done.returncode, done.stdout, err),
            "click" not in imported)


R1 = {"AFTERPARTY_RELEASE": "r1"}


def _all_done(project: Project) -> dict[str, str]:
    project.write_task("20260101000001", "seed_plans")
    project.write_task("20260101000002", "warm_cache")
    assert project.cli("run", extra_env=R1).code == 0
    return R1


def _sub_folder(project: Project) -> dict[str, str]:
    env = _all_done(project)
    (project.tasks_dir / "archive").mkdir()
    (project.tasks_dir / "archive" / "20250101000000_old.py").write_text("raise SystemExit(3)\n")
    (project.tasks_dir / "_helpers.py").write_text("raise SystemExit(3)\n")
    return env


def _other_environment(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "staging_only", options='environments=["staging"]')
    return env


def _commented_out_options(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "for_here_too",
                       header='# @task(environments=["staging"])\n',
                       options='description="# environments=[\'staging\']"')
    return env


def _options_from_a_variable(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "staging_only", header='ONLY = ["staging"]\n',
                       options="environments=ONLY")
    return env


def _new_task(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "tell_sales")
    return env


def _new_release(project: Project) -> dict[str, str]:
    _all_done(project)
    return {"AFTERPARTY_RELEASE": "r2"}


def _waits_for_the_release(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "ask_for_feedback", options='live_for="1h"')
    assert "waiting" in project.cli("run", extra_env=env).out
    return env


def _awaits_a_person(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "restart_search", options="manual=True")
    assert "awaits a person" in project.cli("run", "--no-input", extra_env=env).out
    return env


def _recurring(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "refresh_docs", options="recurring=True")
    assert project.cli("run", extra_env=env).code == 0
    return env


def _notice_due(project: Project) -> dict[str, str]:
    env = _all_done(project)
    project.write_task("20260101000003", "tell_customer", 'ctx.notify("fixed", after="1s")')
    assert project.cli("run", extra_env={**env, "AFTERPARTY_NOTIFY": "json://127.0.0.1:9/"}).code == 0
    wait_until(lambda: project.query("SELECT COUNT(*) FROM afterparty_notices WHERE due_at <= "
                                      "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')") == [(1,)],
               "the held notice falling due")
    return env


def _release_rolled_back(project: Project) -> dict[str, str]:
    env = _all_done(project)
    later = project.write_task("20260101000003", "enable_search_v2")
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r2"}).code == 0
    later.unlink()
    return env


NOTHING_TO_DO = [_all_done, _sub_folder, _other_environment, _new_release]
SOMETHING_TO_DO_OR_SAY = [_commented_out_options, _new_task, _waits_for_the_release,
                          _awaits_a_person, _recurring, _notice_due, _release_rolled_back]


@pytest.mark.parametrize("scenario", NOTHING_TO_DO, ids=lambda f: f.__name__.strip("_"))
def test_the_quick_look_answers_a_run_with_nothing_to_do_as_the_command_line_does(
        sqlite_project: Project, scenario: Callable[[Project], dict[str, str]]) -> None:
    env = scenario(sqlite_project)
    full, quick, answered = answers(sqlite_project, env)
    assert (full.code, full.out) == (0, "no pending tasks\n"), full.both
    assert answered, quick.both
    assert (quick.code, quick.out, quick.err) == (full.code, full.out, full.err)


@pytest.mark.parametrize("scenario", SOMETHING_TO_DO_OR_SAY, ids=lambda f: f.__name__.strip("_"))
def test_the_quick_look_leaves_whatever_is_to_do_or_say_to_the_command_line(
        sqlite_project: Project, scenario: Callable[[Project], dict[str, str]]) -> None:
    env = scenario(sqlite_project)
    full, quick, answered = answers(sqlite_project, env)
    assert not answered, quick.both
    assert quick.code == full.code, (quick.both, full.both)


def test_a_task_whose_options_only_an_import_tells_is_left_to_the_command_line(
        sqlite_project: Project) -> None:
    """``environments=ONLY``: the look cannot read it, so the command line imports the file
    (and finds nothing to run here) on every deploy; it never records such a task."""
    env = _options_from_a_variable(sqlite_project)
    full, quick, answered = answers(sqlite_project, env)
    assert not answered
    assert (full.code, full.out) == (quick.code, quick.out) == (0, "no pending tasks\n")


def test_a_new_release_with_nothing_to_do_is_recorded_by_the_quick_look(sqlite_project: Project) -> None:
    _all_done(sqlite_project)
    _, quick, answered = answers(sqlite_project, {"AFTERPARTY_RELEASE": "r2"})
    assert answered and quick.out == "no pending tasks\n"
    assert sqlite_project.query("SELECT release_id FROM afterparty_releases ORDER BY "
                                "first_deployed_at") == [("r1",), ("r2",)]


@pytest.mark.parametrize("args", [("--env", "development", "run", "--no-input", "--wait", "5"),
                                  ("run", "--keep-going", "--if-busy=skip")])
def test_a_run_with_options_that_change_nothing_here_is_answered_quickly(
        sqlite_project: Project, args: tuple[str, ...]) -> None:
    env = _all_done(sqlite_project)
    full, quick, answered = answers(sqlite_project, env, args)
    assert answered
    assert (quick.code, quick.out, quick.err) == (full.code, full.out, full.err) == (
        0, "no pending tasks\n", "")


def test_a_pyproject_broken_outside_the_table_does_not_stop_a_deploy_with_nothing_to_do(
        sqlite_project: Project) -> None:
    """The quick look reads only a plain [tool.afterparty] (README: the choices of that path);
    every other command reads the whole file and says what is wrong with it."""
    env = _all_done(sqlite_project)
    pyproject = sqlite_project.root / "pyproject.toml"
    pyproject.write_text('[project]\nname = "app"\nversion = \n\n[tool.afterparty]\n'
                         'environment = "development"\n')
    deploy = sqlite_project.cli("run", extra_env=env)
    assert (deploy.code, deploy.out) == (0, "no pending tasks\n"), deploy.both
    status = sqlite_project.cli("status", extra_env=env)
    assert status.code == 2 and "pyproject.toml is not valid TOML" in status.err
    pyproject.write_text('[project]\nname = "app"\n\n[tool.afterparty]\nenvironment = ["development"]\n')
    broken_table = sqlite_project.cli("run", extra_env=env)
    assert broken_table.code == 2 and "must be a string" in broken_table.err, broken_table.both


def test_ctrl_c_while_the_quick_look_waits_for_the_database_ends_quietly(
        sqlite_project: Project) -> None:
    """A server that accepts the connection and never answers: Ctrl-C ends the deploy with 130
    and no traceback, as it does in the command line."""
    import signal
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://deployer@127.0.0.1:{silent.getsockname()[1]}/shop"
        runner = sqlite_project.popen("run", extra_env={"AFTERPARTY_DATABASE_URL": url})
        try:
            connection, _ = silent.accept()  # the look is connecting now
            runner.send_signal(signal.SIGINT)
            out, err = runner.communicate(timeout=60)
            connection.close()
        finally:
            stop(runner)
    assert runner.returncode == 130, (out, err)
    assert "Traceback" not in err and out == ""
