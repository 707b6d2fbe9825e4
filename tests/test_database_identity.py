"""Which database the records are in: a copy of the records (a restored backup, a staging clone, a
SQLite file baked into an image) is told apart from the database it was copied from, whatever it
says about itself; a SQLite file reached by two hard links is refused; and the SQLite lock knows
when its file was replaced under it.

``Dialect.place`` and ``DatabaseLock.guards_commit`` are what the fence asks; these tests hold
them to their word on each backend, against the real servers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.base import Database
from afterparty.backends.url import parse_url
from conftest import MYSQL_ADMIN, POSTGRES_ADMIN_URL, Project

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


def read_identity(database: Database) -> str:
    (identity,), = database.query("SELECT environment_id FROM records_identity")
    database.rollback()
    return str(identity)


@contextmanager
def copied(url: str, directory: Path) -> Iterator[str]:
    """A copy of the database at ``url``, as its operators would make one; dropped afterwards."""
    if url.startswith("sqlite"):
        copy = directory / "restored-backup.sqlite3"
        with sqlite3.connect(url.split("sqlite:///", 1)[1]) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        yield f"sqlite:///{copy}"
        return
    original = url.rsplit("/", 1)[1]
    name = f"{original}_copy"
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {original}")  # a file-level copy
            try:
                yield f"{url.rsplit('/', 1)[0]}/{name}"
            finally:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    import pymysql

    admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cursor:  # what a dump restored on the same server makes
            cursor.execute(f"CREATE DATABASE {name}")
            cursor.execute(f"CREATE TABLE {name}.records_identity LIKE {original}.records_identity")
            cursor.execute(f"INSERT INTO {name}.records_identity SELECT * FROM {original}.records_identity")
        try:
            yield f"{url.rsplit('/', 1)[0]}/{name}"
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.close()


def test_a_copy_of_the_records_is_another_place(database_url: str, tmp_path: Path) -> None:
    identity = write_records(database_url)

    with copied(database_url, tmp_path) as copy_url, opened(database_url) as original, \
            opened(copy_url) as copy:
        assert read_identity(copy) == identity  # the copy says it is the same records
        assert copy.dialect.place(copy) != original.dialect.place(original)


def test_the_same_database_reached_twice_is_one_place(database_url: str, tmp_path: Path) -> None:
    write_records(database_url)
    urls = [database_url, database_url]
    if database_url.startswith("sqlite"):
        link = tmp_path / "current.sqlite3"
        link.symlink_to(database_url.split("sqlite:///", 1)[1])
        urls[1] = f"sqlite:///{link}"

    with opened(urls[0]) as first, opened(urls[1]) as second:
        place = first.dialect.place(first)
        assert place == second.dialect.place(second)
        assert place == first.dialect.place(first)  # and it stays so


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_role_that_cannot_read_the_cluster_identifier_still_has_a_place(database_url: str) -> None:
    """Hosted PostgreSQL may revoke pg_control_system(): the server's address stands in."""
    import psycopg

    role = f"ap_place_{uuid.uuid4().hex[:8]}"
    database = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'secret'")
        try:
            with psycopg.connect(database_url, autocommit=True) as owner:
                owner.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
            host = POSTGRES_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
            url = f"postgresql://{role}:secret@{host}/{database}"
            with opened(url) as first, opened(url) as second, opened(database_url) as superuser:
                place = first.dialect.place(first)
                assert place == second.dialect.place(second)
                # The same database (its oid), said another way: the server's address for the cluster.
                said_by_superuser = superuser.dialect.place(superuser)
                assert place != said_by_superuser
                assert place.split("/")[1] == said_by_superuser.split("/")[1]
        finally:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


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
            before = database.dialect.place(database)
            change(records_file)
            assert not lock.guards_commit()
            assert not lock.is_held()
            if records_file.exists():
                assert database.dialect.place(database) != before
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
