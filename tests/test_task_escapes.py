"""Ways a task body can try to leave the runner: exits, and text or errors the database cannot
store. Each ends as a recorded outcome of that task, never as a silent exit, a task stuck
`running` or a side effect repeated (issue 9, holes 2 and 3). The task's transaction control is
in test_task_escapes_transactions.py, signals and timeouts in test_task_escapes_signals.py."""

from __future__ import annotations

import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import MYSQL_ADMIN, POSTGRES_ADMIN_URL, Project, clean_env


def wait_until(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """A test that failed must not leave a runner behind (it would block dropping the database)."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def states(project: Project) -> dict[str, str]:
    rows = project.query("SELECT name, state FROM afterparty_tasks")
    return {str(name): str(state) for name, state in rows}


def backend(project: Project) -> str:
    return project.database_url.split(":", 1)[0]


def project_on(tmp_path: Path, url: str) -> Project:
    root = tmp_path / "app"
    (root / "release_tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.afterparty]\n')
    return Project(root, url, clean_env(url))


def appends(ledger: Path, line: str) -> str:
    """Task code that notes in a file that it ran (an outside effect)."""
    return f"open({str(ledger)!r}, 'a').write({line + chr(10)!r})"


# --- hole 2: SystemExit and KeyboardInterrupt raised by a task ---------------------------

EXITS = {
    "exit_zero": ("import sys\nsys.exit(0)", "sys.exit(0)"),
    "exit_three": ("import sys\nsys.exit(3)", "sys.exit(3)"),
    "click_bad_option": ("import click\nclick.command()(lambda: None)(['--bad'])", "sys.exit(2)"),
    "click_ctx_exit": ("import click\n\n@click.command()\n@click.pass_context\ndef cmd(c):\n"
                       "    c.exit(4)\n\ncmd([])", "sys.exit(4)"),
    "raises_ctrl_c": ("raise KeyboardInterrupt", "raised KeyboardInterrupt itself"),
}


def test_a_task_that_exits_fails_with_its_code_and_keep_going_runs_the_rest(project: Project) -> None:
    """sys.exit(0), sys.exit(3), a click command's exit and a KeyboardInterrupt the task raised
    itself each fail only that task, with the exit code in its error; so does a human step
    whose body exits, and a `when` condition that exits is a condition not met."""
    ledger = project.root / "ledger"
    for number, (name, (body, _)) in enumerate(EXITS.items(), 1):
        project.write_task(f"2026010100000{number}", name, appends(ledger, name) + "\n" + body)
    project.write_task("20260101000006", "manual_exits", "import sys\nsys.exit(0)", options="manual=True")
    project.write_task("20260101000007", "condition_exits", appends(ledger, "condition_exits"),
                       header="import sys\n\ndef ready(ctx):\n    sys.exit(0)\n", options="when=ready")
    project.write_task("20260101000009", "after", appends(ledger, "after"))

    result = project.cli("run", "--keep-going")
    assert result.code == 1, result.both
    assert "summary: 1 succeeded, 6 failed, 1 waiting" in result.out
    assert "condition_exits waiting: condition ready raised SystemExit: 0" in result.out
    assert "see the error with `afterparty show 20260101000001`" in result.err
    assert states(project) == {**{name: "failed" for name in EXITS}, "manual_exits": "failed",
                               "condition_exits": "pending", "after": "succeeded"}
    for number, (name, (_, said)) in enumerate([*EXITS.items(), ("manual_exits", ("", "sys.exit(0)"))], 1):
        shown = project.cli("show", f"2026010100000{number}")
        assert f"{name}: failed" in shown.out and said in shown.out, shown.both
    assert ledger.read_text().split() == [*EXITS, "after"]


def test_sys_exit_0_in_a_task_stops_the_run_with_exit_1(sqlite_project: Project) -> None:
    """A task calling sys.exit(0) does not make a deploy succeed: the run stops as for any failure."""
    sqlite_project.write_task("20260101000001", "exits", "import sys\nsys.exit(0)")
    sqlite_project.write_task("20260101000002", "later")
    result = sqlite_project.cli("run")
    assert result.code == 1, result.both
    assert "20260101000001 exits failed" in result.out
    assert "summary: 0 succeeded, 1 failed, 1 still pending" in result.out
    assert states(sqlite_project) == {"exits": "failed"}


# --- hole 3: text the database cannot store ------------------------------------------------

# (Python literal in the task, what `show` prints back)
ODD_TEXT = {
    "nul": ("'before\\x00after'", "before\\x00after"),
    "surrogate": ("os.fsdecode(b'bytes \\xff here')", "bytes \\udcff here"),
    "check_mark_and_emoji": ("'done \\u2713 \\U0001f389'", "done \u2713 \U0001f389"),
}


def check_odd_text_is_recorded(project: Project, escaped: bool = False) -> None:
    """Tasks print or raise odd text under an ASCII-only C locale: each is recorded with its own
    outcome, readable, and a task that succeeded does not run again. ``escaped``: the tables
    cannot hold a check mark, so every non-ASCII character is kept as an escape."""
    ledger = project.root / "ledger"
    expected = {**ODD_TEXT, "check_mark_and_emoji": (ODD_TEXT["check_mark_and_emoji"][0],
                                                     "done \\u2713 \\U0001f389")} if escaped else ODD_TEXT
    for number, (kind, (literal, _)) in enumerate(ODD_TEXT.items(), 1):
        project.write_task(f"202601010000{number}1", f"prints_{kind}",
                           f"import os\n{appends(ledger, kind)}\nprint({literal})")
        project.write_task(f"202601010000{number}2", f"raises_{kind}",
                           f"import os\nraise RuntimeError({literal})")
    c_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    result = project.cli("run", "--keep-going", extra_env=c_locale)
    assert result.code == 1, result.both
    assert states(project) == {**states(project), **{f"prints_{kind}": "succeeded" for kind in ODD_TEXT},
                               **{f"raises_{kind}": "failed" for kind in ODD_TEXT}}
    for number, (_, stored) in enumerate(expected.values(), 1):
        printed = project.cli("show", f"202601010000{number}1")
        assert stored in printed.out, printed.both
        raised = project.cli("show", f"202601010000{number}2")
        assert f"RuntimeError: {stored}" in raised.out, raised.both

    again = project.cli("run", "--keep-going", extra_env=c_locale)
    assert again.code == 1 and "summary: 0 succeeded, 3 failed" in again.out, again.both
    assert ledger.read_text().split() == list(ODD_TEXT)  # each printing task ran once
    assert "running" not in states(project).values()


def test_output_and_errors_the_database_cannot_store_are_recorded(project: Project) -> None:
    """A NUL byte, a lone surrogate, a check mark and an emoji in output and errors."""
    check_odd_text_is_recorded(project)


@pytest.fixture(params=["mysql latin1", "mysql utf8mb3", "mysql latin1 old-tables",
                        "mysql utf8mb3 old-tables", "postgresql LATIN1"])
def narrow_database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, bool]]:
    """A database created with a character set that cannot hold every character: its url, that
    character set, and whether its records tables come from before afterparty made them utf8mb4."""
    kind, charset, *old = request.param.split()
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    if kind == "postgresql":
        psycopg = pytest.importorskip("psycopg")
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
        admin.execute(f"CREATE DATABASE {name} ENCODING '{charset}' LC_COLLATE 'C' LC_CTYPE 'C' "
                      "TEMPLATE template0")
        try:
            yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}", charset, False
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()
        return
    pymysql = pytest.importorskip("pymysql")
    admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True, connect_timeout=5)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET {charset}")
    try:
        yield (f"mysql://{MYSQL_ADMIN['user']}@{MYSQL_ADMIN['host']}:{MYSQL_ADMIN['port']}/{name}",
               charset, bool(old))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def test_odd_text_in_a_database_with_a_narrow_character_set(
        tmp_path: Path, narrow_database: tuple[str, str, bool]) -> None:
    """A MariaDB database created latin1 or utf8mb3 (also with records tables an older afterparty
    made in it), a PostgreSQL database in LATIN1: every outcome is recorded, readable."""
    url, charset, old_tables = narrow_database
    project = project_on(tmp_path, url)
    if old_tables:
        project.write_task("20250101000001", "first")
        assert project.cli("run").code == 0
        for table in ("afterparty_tasks", "afterparty_attempts"):
            project.query(f"ALTER TABLE {table} CONVERT TO CHARACTER SET {charset}")
    check_odd_text_is_recorded(project, escaped=old_tables or charset == "LATIN1")


def test_a_20_mb_error_message_is_recorded_cut(project: Project) -> None:
    """A huge exception message is kept cut, and the run's own line stays one short line."""
    project.write_task("20260101000001", "huge_error", "raise RuntimeError('x' * 20_000_000)")
    result = project.cli("run")
    assert result.code == 1, result.err[-2000:]
    assert len(result.out) < 100_000
    assert states(project) == {"huge_error": "failed"}
    shown = project.cli("show", "20260101000001")
    assert "RuntimeError: xxxx" in shown.out and "[cut: too long to keep]" in shown.out
    assert len(shown.out) < 200_000


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_success_record_that_cannot_commit_is_said_and_run_again(project: Project) -> None:
    """A deferred constraint fails only at COMMIT, after the body finished: the task is recorded
    failed saying so, its work is rolled back, and the next run runs it again."""
    project.query("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    project.query("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
                  "DEFERRABLE INITIALLY DEFERRED)")
    ledger = project.root / "ledger"
    project.write_task("20260101000001", "orphan_child",
                       f"ctx.db.cursor().execute('INSERT INTO child VALUES (42)')\n{appends(ledger, 'ran')}")
    result = project.cli("run")
    assert result.code == 1, result.both
    line = next(line for line in result.out.splitlines() if "orphan_child failed" in line)
    assert "body finished" in line and "rolled back" in line and "runs it again" in line, line
    assert states(project) == {"orphan_child": "failed"}
    assert project.query("SELECT parent_id FROM child") == []
    assert project.cli("run").code == 1
    assert ledger.read_text().split() == ["ran", "ran"]


def test_a_task_that_goes_on_after_a_failed_statement_is_failed_not_committed(
        tmp_path: Path, postgresql_url: str) -> None:
    """On PostgreSQL a failed statement aborts the task's transaction; a task that catches the
    error and returns cannot commit anything, and the message says so (not "committed")."""
    project = project_on(tmp_path, postgresql_url)
    project.query("CREATE TABLE shipped (note TEXT)")
    project.write_task("20260101000001", "swallows_db_error", """
        ctx.db.execute("INSERT INTO shipped VALUES ('before')")
        try:
            ctx.db.execute("SELECT 1 / 0")
        except Exception:
            pass
    """)
    result = project.cli("run")
    assert result.code == 1, result.both
    line = next(line for line in result.out.splitlines() if "swallows_db_error failed" in line)
    assert "body finished" in line and "current transaction is aborted" in line, line
    assert "rolled back" in line and "committed on its own" not in line, line
    assert project.query("SELECT note FROM shipped") == []
    assert states(project) == {"swallows_db_error": "failed"}


# Task code that makes the server end the task's own session once it is idle, and waits until
# it has (as a DBA's idle timeout does during a long task that calls an outside service).
SESSION_ENDS = {
    "postgresql": """
        import psycopg, time
        ctx.db.execute("SET idle_in_transaction_session_timeout = '1s'")
        (pid,), = ctx.db.execute("SELECT pg_backend_pid()").fetchall()
        watch = psycopg.connect({url!r}, autocommit=True)
        ended = time.monotonic() + 30
        while watch.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < ended
            time.sleep(0.1)
    """,
    "mysql": """
        import pymysql, time
        cursor = ctx.db.cursor()
        cursor.execute("SET SESSION wait_timeout = 1")
        cursor.execute("SELECT CONNECTION_ID()")
        (pid,), = cursor.fetchall()
        watch = pymysql.connect(host={host!r}, port={port!r}, user={user!r}, autocommit=True).cursor()
        ended = time.monotonic() + 30
        while watch.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)):
            assert time.monotonic() < ended
            time.sleep(0.1)
    """,
}


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_a_task_whose_session_ended_while_it_ran_is_recorded_interrupted(project: Project) -> None:
    """The server ends the task's idle session during a long task: its outcome is still
    recorded (interrupted, saying so: the body finished, its record could not be written, so
    ``on_interrupt`` decides what happens next), not left `running` as if the runner had died,
    and the next task runs on a new session."""
    project.query("CREATE TABLE shipped (note VARCHAR(20))")
    ends = textwrap.dedent(SESSION_ENDS[backend(project)]).format(url=project.database_url, **MYSQL_ADMIN)
    project.write_task("20260101000001", "long_call",
                       "ctx.db.cursor().execute(\"INSERT INTO shipped VALUES ('work')\")\n" + ends)
    project.write_task("20260101000002", "next_one",
                       "ctx.db.cursor().execute(\"INSERT INTO shipped VALUES ('next')\")")
    result = project.cli("run", "--keep-going")
    assert result.code == 1, result.both
    line = next(line for line in result.out.splitlines() if "long_call interrupted" in line)
    assert "body finished" in line and "session ended" in line and "on_interrupt" in line, line
    assert states(project) == {"long_call": "interrupted", "next_one": "succeeded"}
    assert project.query("SELECT note FROM shipped") == [("next",)]
