"""Which database the records are in: a SQLite file reached by two hard links is refused, and
the SQLite lock knows when its file was replaced under it.

``DatabaseLock.guards_commit`` is what the fence asks; these tests hold it to its word on each
backend, against the real servers.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.base import Database
from afterparty.backends.url import parse_url
from conftest import Project

VERSION = "20260101000000"


def open_url(url: str) -> Database:
    return open_database(parse_url(url), 5.0)


@contextmanager
def opened(url: str) -> Iterator[Database]:
    database = open_url(url)
    try:
        yield database
    finally:
        database.close()


def write_records(url: str) -> str:
    """Records as afterparty keeps them, with the identity they carry in their own rows."""
    identity = uuid.uuid4().hex
    with opened(url) as database:
        database.execute("CREATE TABLE records_identity (environment_id VARCHAR(32))")
        database.execute("INSERT INTO records_identity VALUES (%s)", (identity,))
        database.commit()
    return identity


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "records.sqlite3"
    write_records(f"sqlite:///{path}")
    return path


def replaced(path: Path) -> None:
    """A restore over the live file: another file now has its name."""
    shutil.copy(path, path.with_suffix(".restored"))
    os.replace(path.with_suffix(".restored"), path)


def deleted(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("change", [replaced, deleted], ids=["replaced", "deleted"])
def test_the_file_lock_no_longer_guards_commits_once_its_file_is_replaced(
        records_file: Path, change: Callable[[Path], None]) -> None:
    with opened(f"sqlite:///{records_file}") as database:
        lock = database.lock("afterparty_")
        assert lock.try_acquire()
        try:
            assert lock.guards_commit()
            change(records_file)
            assert not lock.guards_commit()
            assert not lock.is_held()
        finally:
            lock.close()


def test_a_symlink_moved_to_another_file_no_longer_guards_commits(records_file: Path,
                                                                   tmp_path: Path) -> None:
    """The runner reached the records through a symlink that a release then pointed at another
    file: the next runner writes there, so this one must commit nothing more."""
    link = tmp_path / "current.sqlite3"
    link.symlink_to(records_file)
    other = tmp_path / "other.sqlite3"
    shutil.copy(records_file, other)
    with opened(f"sqlite:///{link}") as database:
        lock = database.lock("afterparty_")
        assert lock.try_acquire()
        try:
            assert lock.guards_commit()
            link.unlink()
            link.symlink_to(other)
            assert not lock.guards_commit()
        finally:
            lock.close()


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_a_lock_kept_by_the_server_guards_commits_without_asking_it(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server keeps the lock for a session in that one database: nothing to check."""
    def round_trip(*args: object) -> None:
        raise AssertionError("guards_commit asked the server")

    with opened(database_url) as database:
        lock = database.lock("afterparty_")
        assert lock.try_acquire()
        try:
            monkeypatch.setattr(lock.session, "query", round_trip)  # type: ignore[attr-defined]
            monkeypatch.setattr(database, "query", round_trip)
            assert lock.guards_commit()
            monkeypatch.undo()
        finally:
            lock.close()


def test_a_database_file_with_two_hard_links_is_refused(sqlite_project: Project, tmp_path: Path) -> None:
    project = sqlite_project
    path = Path(project.database_url.split("sqlite:///", 1)[1])
    project.write_task(VERSION, "first")
    assert project.cli("run").code == 0
    second = tmp_path / "second-name.sqlite3"
    os.link(path, second)

    for name in (path, second):
        project.write_task(str(int(VERSION) + 1), "second")
        result = project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": f"sqlite:///{name}"})
        assert result.code == 4, result.both
        line = result.err.strip()
        assert line == (
            f"afterparty: error: the SQLite database {name} has 2 hard links: SQLite keeps its "
            "write-ahead log beside one path, so two paths would see two databases; use one path "
            "(a symlink is fine) and remove the other links (find them with: "
            f"find / -xdev -samefile {name})"), line

    second.unlink()
    symlink = tmp_path / "current.sqlite3"
    symlink.symlink_to(path)
    result = project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": f"sqlite:///{symlink}"})
    assert result.code == 0, result.both
    assert project.query(f"SELECT state FROM afterparty_tasks WHERE version = '{int(VERSION) + 1}'") \
        == [("succeeded",)]
