"""SQLite shared with the application: deploys and decisions wait their turn for the database's
one write lock while the application writes, and fail (exit 4) only when that wait runs out; a
task's own transaction leaves the lock to others until it writes.

The writers are real processes on the same file: an application committing a row every 10 ms,
and a backfill that holds each write transaction for 10 ms and starts the next one at once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.base import Database
from afterparty.backends.url import parse_url
from afterparty.errors import DatabaseError
from conftest import Project, Result, stop, wait_until

VERSION_BASE = 20260101000000
# A task no run reaches (not before 2099): the decisions' subject, skipped and forgotten in turn.
LATER = "20990101000000"
WRITER = """\
import sqlite3, sys, time

path, kind = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(path, timeout=60, isolation_level=None)
connection.execute("PRAGMA journal_mode = WAL")
connection.execute(f"CREATE TABLE IF NOT EXISTS {kind}_rows (at REAL)")
while True:
    if kind == "app":  # a web application: one row per request, committed at once
        connection.execute("INSERT INTO app_rows (at) VALUES (?)", (time.time(),))
        time.sleep(0.01)
    elif kind == "backfill":  # batches of 10 ms, each committed, the next one begun at once
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO backfill_rows (at) VALUES (?)", (time.time(),))
        time.sleep(0.01)
        connection.execute("COMMIT")
    else:  # one transaction held until the test closes this writer's stdin
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO holder_rows (at) VALUES (?)", (time.time(),))
        print("holding", flush=True)
        sys.stdin.read()
        connection.execute("COMMIT")
        break
"""


def database_path(project: Project) -> str:
    return project.database_url.split("sqlite:///", 1)[1]


class Writers:
    """The application's writer processes on the records' database file, killed at the end."""

    def __init__(self, project: Project, directory: Path) -> None:
        self.project = project
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, kind: str) -> subprocess.Popen[str]:
        """Start one and wait until its first row is committed (or, for the holder, until it
        holds the write lock)."""
        with open(self.directory / f"{kind}.log", "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", WRITER, database_path(self.project), kind],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE if kind == "holder" else log,
                stderr=log, text=True)
        self.processes[kind] = process
        if kind == "holder":
            assert process.stdout is not None
            assert process.stdout.readline() == "holding\n", self.log(kind)
        else:
            wait_until(lambda: self.rows(kind) > 0 or process.poll() is not None, f"{kind} writing")
        assert process.poll() is None, self.log(kind)
        return process

    def rows(self, kind: str) -> int:
        try:
            ((count,),) = self.project.query(f"SELECT count(*) FROM {kind}_rows")
        except Exception:  # the writer has not created its table yet
            return 0
        return int(str(count))

    def log(self, kind: str) -> str:
        return (self.directory / f"{kind}.log").read_text()

    def assert_still_writing(self, kind: str) -> None:
        assert self.processes[kind].poll() is None, f"the {kind} writer died: {self.log(kind)}"

    def stop_all(self) -> None:
        for process in self.processes.values():
            stop(process)


@pytest.fixture
def writers(sqlite_project: Project, tmp_path: Path) -> Iterator[Writers]:
    started = Writers(sqlite_project, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def deploys_and_decisions(project: Project, count: int) -> list[tuple[str, Result]]:
    """``count`` deploys, each with a new task so it really writes, and ``count`` decisions,
    one after another as a release train would make them."""
    project.write_task(LATER, "later", options='description="later", not_before="2099-01-01"')
    results = []
    for i in range(count):
        project.write_task(str(VERSION_BASE + i), f"step_{i}")
        results.append((f"run (task {i})", project.cli("run")))
        decision = ("skip", LATER, "--reason", "x") if i % 2 == 0 else ("forget", LATER)
        results.append((" ".join(decision), project.cli(*decision)))
    return results


@pytest.mark.parametrize("kinds", [["app"], ["app", "backfill"]], ids=["app", "app+backfill"])
def test_deploys_and_decisions_wait_for_the_application_s_writes(
        sqlite_project: Project, writers: Writers, kinds: list[str]) -> None:
    project = sqlite_project
    for kind in kinds:
        writers.start(kind)
    before = {kind: writers.rows(kind) for kind in kinds}

    results = deploys_and_decisions(project, 20)

    locked = [f"{what}: {result.both.strip()}" for what, result in results if result.code == 4]
    assert not locked, f"{len(locked)} of {len(results)} commands exit 4, the first: {locked[0]}"
    failed = [f"{what} exit {result.code}: {result.both.strip()}" for what, result in results
              if result.code != 0]
    assert not failed, failed[0]
    for kind in kinds:
        writers.assert_still_writing(kind)
    # The application kept writing. (Not each writer: SQLite's busy handler is not fair, and a
    # backfill that begins its next write transaction at once may keep the app writer out.)
    assert sum(writers.rows(kind) for kind in kinds) > sum(before.values()), "the writers wrote"
    assert project.query(f"SELECT count(*) FROM afterparty_tasks WHERE state = 'succeeded' "
                         f"AND version < '{LATER}'") == [(20,)]


def test_a_writer_that_keeps_the_lock_past_the_timeout_stops_the_deploy_with_exit_4(
        sqlite_project: Project, writers: Writers) -> None:
    """Waiting has an end: a writer that holds its transaction longer than the URL's timeout
    stops the deploy with one line that says so, who holds it, and what to do."""
    project = sqlite_project
    project.write_task(str(VERSION_BASE), "first")
    assert project.cli("run").code == 0
    project.write_task(str(VERSION_BASE + 1), "second")
    holder = writers.start("holder")

    result = project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": f"{project.database_url}?timeout=1"})

    assert result.code == 4, result.both
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert "stayed locked by another writer for 1 s" in line, line
    assert f"pid {holder.pid}" in line, line
    assert "?timeout=" in line, line
    holder_done = holder.communicate(timeout=30)  # let it commit, then the deploy goes through
    assert holder.returncode == 0, holder_done
    assert project.cli("run").code == 0
    assert project.query(f"SELECT state FROM afterparty_tasks WHERE version = '{VERSION_BASE + 1}'") \
        == [("succeeded",)]


def test_a_timeout_that_is_no_number_of_seconds_is_refused(sqlite_project: Project) -> None:
    sqlite_project.write_task(str(VERSION_BASE), "first")
    result = sqlite_project.cli(
        "run", extra_env={"AFTERPARTY_DATABASE_URL": f"{sqlite_project.database_url}?timeout=soon"})
    assert result.code == 2, result.both
    assert "timeout='soon' is not a number of seconds; use for example ?timeout=60" in result.err


def open_records(path: Path, kind: str) -> Database:
    """The records' database on a SQLite file, through afterparty's own driver connection or
    through a SQLAlchemy engine (Flask)."""
    if kind == "sqlalchemy":
        from sqlalchemy import create_engine

        from afterparty.backends.sqlalchemy import engine_database

        return engine_database(create_engine(f"sqlite:///{path}"))
    return open_database(parse_url(f"sqlite:///{path}"), 5.0)


@pytest.mark.parametrize("kind", ["driver", "sqlalchemy"])
def test_a_transaction_that_reads_then_writes_is_not_refused_for_a_commit_in_between(
        tmp_path: Path, kind: str) -> None:
    """What the deploys above hit, in one transaction: it read, the application committed,
    then it wrote. Begun IMMEDIATE, it holds the write lock from the start: the application's
    commit waits for it instead."""
    path = tmp_path / "records.sqlite3"
    database = open_records(path, kind)
    application = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        database.execute("CREATE TABLE notes (note TEXT)")
        database.begin()
        database.query("SELECT count(*) FROM notes")
        with contextlib.suppress(sqlite3.OperationalError):  # it has to wait: afterparty writes
            application.execute("INSERT INTO notes VALUES ('application')")
        database.execute("INSERT INTO notes VALUES ('afterparty')")
        database.commit()
        application.execute("INSERT INTO notes VALUES ('application, later')")
        assert ("afterparty",) in database.query("SELECT note FROM notes")
    finally:
        application.close()
        database.close()


@pytest.mark.parametrize("kind", ["driver", "sqlalchemy"])
def test_a_task_s_transaction_takes_the_write_lock_only_when_it_writes(tmp_path: Path,
                                                                        kind: str) -> None:
    """A task may run long before it writes, or never: meanwhile the application goes on
    writing. A transaction of record writes holds the lock from its start."""
    path = tmp_path / "records.sqlite3"
    database = open_records(path, kind)
    application = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        database.execute("CREATE TABLE notes (note TEXT)")
        database.begin_task()
        database.execute("SAVEPOINT afterparty_task")
        application.execute("INSERT INTO notes VALUES ('application, while the task runs')")
        database.execute("INSERT INTO notes VALUES ('the task')")
        database.execute("RELEASE SAVEPOINT afterparty_task")
        database.commit()

        database.begin()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            application.execute("INSERT INTO notes VALUES ('application, while records are written')")
        database.rollback()
        assert sorted(database.query("SELECT note FROM notes")) == [
            ("application, while the task runs",), ("the task",)]
    finally:
        application.close()
        database.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="sqlite3 tells the extended code from 3.11 on")
def test_a_task_that_read_before_another_writer_committed_is_refused_at_once(tmp_path: Path) -> None:
    """SQLite's limit for a transaction that does not hold the write lock from its start: once
    another writer committed after it read, it may write nothing. Said at once, not after the
    busy timeout."""
    path = tmp_path / "records.sqlite3"
    database = open_records(path, "driver")
    application = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        database.execute("CREATE TABLE notes (note TEXT)")
        database.begin_task()
        database.connection.driver_connection.execute("SELECT count(*) FROM notes").fetchall()
        application.execute("INSERT INTO notes VALUES ('application')")
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="another writer committed after this transaction read"):
            database.execute("INSERT INTO notes VALUES ('the task')")
        assert time.monotonic() - started < 5
        database.rollback()
    finally:
        application.close()
        database.close()
