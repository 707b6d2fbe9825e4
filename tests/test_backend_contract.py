"""The contract every Database keeps, whatever the database and however it is connected.

Each dialect (SQLite, PostgreSQL, MySQL/MariaDB) runs over each kind of connection: afterparty's
own driver connection from a URL, a Django database alias, and a SQLAlchemy Engine; the nine
pairs meet the same assertions against the real servers, so none of them is a second-class way
to keep records.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.base import Database
from afterparty.backends.url import parse_url
from afterparty.errors import LockLostError
from afterparty.lock import EnvironmentLock, LockOutcome
from afterparty.recorder import Recorder
from afterparty.records import LONG_TEXT_LIMIT, TEXT_LIMIT, Fence, Origin, storable
from afterparty.states import State
from conftest import query, wait_until

# Each dialect with the driver it must be speaking through, whatever the kind of connection.
DRIVERS = {"sqlite": "sqlite3", "postgresql": "psycopg", "mysql": "pymysql"}
# Each kind of connection with the Connection class that must carry it.
KINDS = {"driver": "DriverConnection", "django": "DjangoConnection", "sqlalchemy": "EngineConnection"}
PREFIX = "contract_"
# What a task may print: a character beyond the Basic Multilingual Plane and a NUL byte.
ODD = "shipped \U0001f389 to the caf\u00e9\x00 with a NUL"
ORIGIN = Origin(host="deploy-1", pid=4242, username="deploy", release_id="r1",
                environment="production", tool_version="test")
NOW = "2026-01-01T00:00:00.000+00:00"
_aliases = itertools.count()


@dataclass
class Runner:
    """What one `afterparty run` holds: a database, its recorder and its lock."""

    database: Database
    recorder: Recorder
    lock: EnvironmentLock

    fence: Fence | None = None

    def acquire(self) -> LockOutcome:
        """Take the lock; its fence is kept, as a runner keeps it, even after losing the lock."""
        outcome = self.lock.acquire(0, "fail", lambda holder: None)
        self.fence = self.lock.fence
        return outcome

    def start(self, version: str, text: str = "a task") -> int:
        """Record a task running (committed, fenced), as before its body runs."""
        assert self.fence is not None
        with self.recorder.writing(self.fence):
            return self.recorder.record_start(version, "contract", text, "sum", ORIGIN, NOW,
                                              self.fence, State.PENDING)

    def finish(self, attempt: int, version: str, note: str, text: str = "done") -> None:
        """The task's body and its outcome, as attempt.py runs them: work through the driver's
        own connection inside the runner's transaction and savepoint, then the success record,
        committed together (fenced)."""
        self.database.begin()
        self.database.execute("SAVEPOINT afterparty_task")
        insert_note(self.database, note)
        self.database.execute("RELEASE SAVEPOINT afterparty_task")
        assert self.fence is not None
        self.recorder.record_finish(attempt, version, State.SUCCEEDED, NOW, 0.5, None, text,
                                    self.fence)
        self.recorder.commit(self.fence)

    def versions(self) -> set[str]:
        found = set(self.recorder.read_records())
        self.database.rollback()  # a later look must see what others committed since
        return found


def insert_note(database: Database, note: str) -> None:
    """What a task does with ctx.db: a plain cursor of the driver's connection."""
    cursor = database.connection.driver_connection.cursor()
    try:
        cursor.execute(f"INSERT INTO contract_notes (note) VALUES ('{note}')")
    finally:
        cursor.close()


def create_notes(database: Database) -> None:
    with database.transaction():
        database.execute("CREATE TABLE contract_notes (note VARCHAR(100))")


@dataclass
class Pair:
    """One dialect over one kind of connection, on a database of the test's own."""

    dialect: str
    kind: str
    url: str
    open: Callable[[], Database]
    runners: list[Runner] = field(default_factory=list)

    def runner(self) -> Runner:
        """Another runner of the same kind on the same database, with sessions of its own."""
        database = self.open()
        recorder = Recorder(database, PREFIX)
        self.runners.append(Runner(database, recorder, EnvironmentLock(database.lock(PREFIX), recorder)))
        assert database.dialect.name == self.dialect
        assert KINDS[self.kind] in {kind.__name__ for kind in type(database.connection).__mro__}
        driver = type(database.connection.driver_connection)
        assert DRIVERS[self.dialect] in {kind.__module__.split(".")[0] for kind in driver.__mro__}
        return self.runners[-1]

    def notes(self) -> list[tuple[object, ...]]:
        return query(self.url, "SELECT note FROM contract_notes ORDER BY note")


def driver_opener(url: str, closers: list[Callable[[], None]]) -> Callable[[], Database]:
    return lambda: open_database(parse_url(url))


def engine_opener(url: str, closers: list[Callable[[], None]]) -> Callable[[], Database]:
    from sqlalchemy import create_engine

    from afterparty.backends.sqlalchemy import engine_database

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://")
                           .replace("mysql://", "mysql+pymysql://"))
    closers.append(engine.dispose)
    return lambda: engine_database(engine)


def django_opener(url: str, closers: list[Callable[[], None]]) -> Callable[[], Database]:
    """A Django alias per runner, all naming the same database (as two processes would)."""
    import django
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    from afterparty.contrib.django.backend import django_database

    if not settings.configured:  # once per process; Django's own tests run in subprocesses
        settings.configure(DATABASES={}, INSTALLED_APPS=[], USE_TZ=True)
        django.setup()
    where = parse_url(url)
    if where.backend == "mysql":
        import pymysql

        pymysql.install_as_MySQLdb()  # Django's MySQL backend over PyMySQL instead of mysqlclient
    engine = {"sqlite": "sqlite3"}.get(where.backend, where.backend)
    entry = {"ENGINE": f"django.db.backends.{engine}", "NAME": where.database,
             "USER": where.username or "", "HOST": where.host or "", "PORT": str(where.port or "")}

    def open_alias() -> Database:
        alias = f"contract_{next(_aliases)}"
        connections.settings[alias] = connections.configure_settings(
            {DEFAULT_DB_ALIAS: {}, alias: dict(entry)})[alias]

        def forget() -> None:
            if hasattr(connections._connections, alias):
                connections[alias].close()
                del connections[alias]
            del connections.settings[alias]

        closers.append(forget)
        return django_database(alias)

    return open_alias


# Sessions on the test's database other than the one asking (a pair must close all of its own).
SESSIONS_LEFT = {
    "postgresql": "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                  "AND pid <> pg_backend_pid()",
    "mysql": "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
             "AND ID <> CONNECTION_ID()",
}
OPENERS = {"driver": driver_opener, "django": django_opener, "sqlalchemy": engine_opener}


@pytest.fixture(params=[(d, k) for d in DRIVERS for k in KINDS], ids=lambda p: "-".join(p))
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    dialect, kind = request.param
    url = (f"sqlite:///{tmp_path / 'records.sqlite3'}" if dialect == "sqlite"
           else str(request.getfixturevalue(f"{dialect}_url")))
    closers: list[Callable[[], None]] = []
    made = Pair(dialect, kind, url, OPENERS[kind](url, closers))
    try:
        yield made
    finally:
        for runner in made.runners:  # as Session.close does
            runner.lock.release()
            runner.database.close()
            runner.lock.database_lock.close()
        for close in closers:
            close()
    if dialect != "sqlite":
        wait_until(lambda: not query(url, SESSIONS_LEFT[dialect]),
                   f"every session of {dialect} over {kind} closed", timeout=10)


def test_one_holder_at_a_time_and_a_stale_holder_commits_nothing(pair: Pair) -> None:
    """Two runners on one database: the schema is made once; one runner holds the lock and
    commits a task's work with its record (odd text kept readable); when it loses the lock
    mid-task and the other takes it with a newer epoch, the first commits nothing more."""
    first, second = pair.runner(), pair.runner()
    first.recorder.ensure_schema()
    first.recorder.ensure_schema()  # a second time finds it in place
    create_notes(first.database)

    assert first.acquire() is LockOutcome.ACQUIRED
    first.lock.check()
    assert first.fence is not None
    epoch = first.fence.epoch
    assert not second.lock.database_lock.try_acquire()

    first.finish(first.start("20260101000001", ODD), "20260101000001", "kept", text=ODD)
    assert pair.notes() == [("kept",)]
    record = second.recorder.read_records()["20260101000001"]
    assert (record.state, record.description) == (State.SUCCEEDED, storable(ODD, TEXT_LIMIT))
    [attempt] = second.recorder.read_attempts("20260101000001")
    assert attempt.output == storable(ODD, LONG_TEXT_LIMIT)
    second.database.rollback()
    # As anyone reading the table sees it: the emoji itself, the NUL as an escape.
    assert query(pair.url, f"SELECT description FROM {PREFIX}tasks") == [
        ("shipped \U0001f389 to the caf\u00e9\\x00 with a NUL",)]

    stale = first.start("20260101000002")
    first.lock.release()  # as when its session is killed mid-task
    with pytest.raises(LockLostError):
        first.lock.check()
    assert second.acquire() is LockOutcome.ACQUIRED
    second.lock.check()
    assert second.fence is not None and second.fence.epoch == epoch + 1

    with pytest.raises(LockLostError):
        first.finish(stale, "20260101000002", "not kept")
    with pytest.raises(LockLostError):
        first.start("20260101000004")
    assert pair.notes() == [("kept",)]
    records = second.recorder.read_records()
    assert (set(records), records["20260101000002"].state) == (
        {"20260101000001", "20260101000002"}, State.RUNNING)
    second.database.rollback()
    second.finish(second.start("20260101000003"), "20260101000003", "later")
    assert pair.notes() == [("kept",), ("later",)]


def test_the_task_transaction_is_undone_by_rollback_and_by_reopen(pair: Pair) -> None:
    """A task's work through the driver's own connection, inside the runner's transaction and
    savepoint, is undone by a rollback, and by reopening the session (after a statement was
    cancelled); the reopened session records the next task."""
    runner, reader = pair.runner(), pair.runner()
    database = runner.database
    create_notes(database)
    assert runner.acquire() is LockOutcome.ACQUIRED

    def task_work() -> None:
        database.begin()
        database.execute("SAVEPOINT afterparty_task")
        insert_note(database, "not kept")
        assert database.query("SELECT note FROM contract_notes") == [("not kept",)]

    task_work()
    database.rollback()
    assert database.query("SELECT note FROM contract_notes") == []

    task_work()
    database.reopen()
    assert database.query("SELECT note FROM contract_notes") == []
    assert pair.notes() == []

    runner.lock.check()
    runner.finish(runner.start("20260101000001"), "20260101000001", "kept")
    assert reader.versions() == {"20260101000001"}
    assert pair.notes() == [("kept",)]


def test_a_long_task_commits_each_batch_with_its_checkpoint_and_reports_progress_aside(
        pair: Pair) -> None:
    """``atomic=False``: work outside a batch commits by itself; a batch's work and its
    checkpoint commit together, fenced (a batch of a runner that lost the lock commits
    nothing); progress is written on a session of its own while a batch is open (SQLite's
    one writer is busy then: the report is kept with the outcome instead)."""
    from types import SimpleNamespace

    from afterparty.interruptions import Interruptions
    from afterparty.long_tasks import LongTask

    runner, reader = pair.runner(), pair.runner()
    database = runner.database
    create_notes(database)
    assert runner.acquire() is LockOutcome.ACQUIRED
    version = "20260101000001"
    attempt = runner.start(version)
    session = SimpleNamespace(database=database, recorder=runner.recorder)
    assert runner.fence is not None
    long_task = LongTask(session, version, False, runner.fence, Interruptions())  # type: ignore[arg-type]
    database.rollback()
    database.connection.set_autocommit(True)

    insert_note(database, "a by itself")
    assert pair.notes() == [("a by itself",)]
    with long_task.batch(SimpleNamespace(), checkpoint={"after": 1}):  # type: ignore[arg-type]
        insert_note(database, "b in batch 1")
        long_task.progress(1, total=2, note="half")
        assert pair.notes() == [("a by itself",)]
        if pair.dialect != "sqlite":
            assert reader.recorder.read_progress()[version].done == 1
            reader.database.rollback()
    assert pair.notes() == [("a by itself",), ("b in batch 1",)]
    assert reader.recorder.read_checkpoints() == {version: '{"after": 1}'}
    reader.database.rollback()

    with pytest.raises(RuntimeError), long_task.batch(SimpleNamespace(), checkpoint=2):  # type: ignore[arg-type]
        insert_note(database, "c rolled back")
        raise RuntimeError("the task failed mid-batch")
    assert pair.notes() == [("a by itself",), ("b in batch 1",)]
    assert long_task.checkpoint_text == '{"after": 1}'

    runner.lock.release()
    assert reader.acquire() is LockOutcome.ACQUIRED
    with pytest.raises(LockLostError), long_task.batch(SimpleNamespace(), checkpoint=3):  # type: ignore[arg-type]
        insert_note(database, "d of a runner that lost the lock")
    assert pair.notes() == [("a by itself",), ("b in batch 1",)]
    assert reader.recorder.read_checkpoints() == {version: '{"after": 1}'}
    reader.database.rollback()
    database.connection.set_autocommit(False)
    long_task.close()
    assert attempt > 0
