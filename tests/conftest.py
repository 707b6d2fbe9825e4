"""Fixtures: a project directory, the real CLI in a subprocess, and a database per backend.

Tests marked with the ``database_url`` fixture run once per backend. PostgreSQL and
MySQL/MariaDB tests create their own database and drop it afterwards; when a server is
not reachable they are skipped locally, and fail in CI (CI=true), where a skipped backend
test must not pass for a green run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("AFTERPARTY_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
MYSQL_ADMIN = {
    "host": os.environ.get("AFTERPARTY_TEST_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("AFTERPARTY_TEST_MYSQL_PORT", "3306")),
    "user": os.environ.get("AFTERPARTY_TEST_MYSQL_USER", "root"),
}
BACKENDS = ["sqlite", "postgresql", "mysql"]


def pytest_configure(config: pytest.Config) -> None:
    """afterparty's own byte-code, written once: the CLI the tests start writes none
    (PYTHONDONTWRITEBYTECODE, so that a task file rewritten within a second is never run from
    a stale cache), and would otherwise compile the whole package in every process, as no
    installed afterparty ever does."""
    import compileall

    import afterparty

    compileall.compile_dir(os.path.dirname(afterparty.__file__), quiet=1)


def unavailable(reason: str) -> None:
    """Skip locally; in CI a backend that cannot be tested is a failure."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must test every backend: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    admin.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MySQL/MariaDB database, dropped afterwards."""
    try:
        import pymysql
    except ImportError:
        unavailable("PyMySQL is not installed (pip install -e '.[test]')")
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True, connect_timeout=5)
    except pymysql.MySQLError as exc:
        unavailable(f"MySQL/MariaDB not reachable at {MYSQL_ADMIN['host']}: {exc}")
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"mysql://{MYSQL_ADMIN['user']}@{MYSQL_ADMIN['host']}:{MYSQL_ADMIN['port']}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The tracking database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


@dataclass
class Project:
    """A user's project: a directory with pyproject.toml and release_tasks/."""

    root: Path
    database_url: str
    env: dict[str, str]

    @property
    def tasks_dir(self) -> Path:
        return self.root / "release_tasks"

    def write_task(self, version: str, name: str, body: str = "pass", *,
                   options: str = 'description="a task"', header: str = "") -> Path:
        """Write release_tasks/<version>_<name>.py with one @task whose body is ``body``."""
        source = (
            "from afterparty import task\n"
            + textwrap.dedent(header)
            + f"\n\n@task({options})\ndef run(ctx):\n"
            + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        )
        path = self.tasks_dir / f"{version}_{name}.py"
        path.write_text(source)
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "afterparty", *args]

    def cli(self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None) -> Result:
        """Run ``afterparty ARGS`` in the project, as a user would."""
        done = subprocess.run(
            self.command(*args), cwd=self.root, env={**self.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args), cwd=self.root, env={**self.env, **(extra_env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def popen_logged(self, *args: str, log: Path,
                     extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Like ``popen``, with stdout and stderr written to ``log``, which a test can read
        while the process runs (to wait for a line it prints)."""
        with open(log, "w") as out:
            return subprocess.Popen(
                self.command(*args), cwd=self.root, env={**self.env, **(extra_env or {})},
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Read the tracking database directly, as a user checking it would."""
        return query(self.database_url, sql)


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split("sqlite:///", 1)[1]) as conn:
            return list(conn.execute(sql).fetchall())
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []
    import pymysql

    rest = url.split("://", 1)[1]
    userhost, database = rest.rsplit("/", 1)
    user, hostport = userhost.split("@")
    host, port = hostport.split(":")
    conn = pymysql.connect(host=host, port=int(port), user=user, database=database, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it is true; fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def stop(process: subprocess.Popen[str]) -> None:
    """Kill a runner a test started, if it is still alive (a failing test must not leave it
    holding a lock or a database that teardown drops)."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def clean_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AFTERPARTY_") and k != "DATABASE_URL"}
    env["AFTERPARTY_DATABASE_URL"] = database_url
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Project:
    """A project using the backend under test."""
    root = tmp_path / "app"
    (root / "release_tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.afterparty]\n')
    return Project(root, database_url, clean_env(database_url))


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Project:
    """A project on SQLite only, for behaviour that does not depend on the database."""
    root = tmp_path / "app"
    (root / "release_tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.afterparty]\n')
    url = f"sqlite:///{tmp_path / 'records.sqlite3'}"
    return Project(root, url, clean_env(url))
