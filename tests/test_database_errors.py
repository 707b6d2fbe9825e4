"""Unreachable, misconfigured, read-only databases and missing drivers: one line, exit 4."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MYSQL_ADMIN, Project, query

SECRET = "s3cret-Pa55word"


def assert_one_line_exit_4(project: Project, url: str, *needles: str) -> None:
    marker = project.root / "imported"
    project.write_task("20260101000001", "one", header=f"open({str(marker)!r}, 'w')\n")
    result = project.cli("--connect-timeout", "1", "run", extra_env={"AFTERPARTY_DATABASE_URL": url})
    assert result.code == 4, result.both
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0]
    assert SECRET not in result.both
    assert "Traceback" not in result.both
    assert not marker.exists()


def test_postgres_closed_port(sqlite_project: Project) -> None:
    assert_one_line_exit_4(sqlite_project, f"postgresql://root:{SECRET}@127.0.0.1:1/test",
                           "127.0.0.1:1", "cannot connect to PostgreSQL")


def test_postgres_unknown_host(sqlite_project: Project) -> None:
    assert_one_line_exit_4(sqlite_project, f"postgres://root:{SECRET}@no-such-host.invalid/test",
                           "no-such-host.invalid")


def test_postgres_bad_credentials(sqlite_project: Project, postgresql_url: str) -> None:
    # The server trusts local connections, so a wrong password alone is accepted: a role that
    # does not exist is refused the same way a wrong password would be.
    url = postgresql_url.replace("postgresql://root@", f"postgresql://nobody_here:{SECRET}@")
    assert_one_line_exit_4(sqlite_project, url, "nobody_here")


def test_mysql_closed_port(sqlite_project: Project) -> None:
    assert_one_line_exit_4(sqlite_project, f"mysql://root:{SECRET}@127.0.0.1:1/test",
                           "127.0.0.1:1", "cannot connect to MySQL/MariaDB")


def test_mysql_wrong_password(sqlite_project: Project, mysql_url: str) -> None:
    url = mysql_url.replace("mysql://root@", f"mysql://root:{SECRET}@")
    assert_one_line_exit_4(sqlite_project, url, "Access denied")


def test_connect_retries_until_the_timeout(sqlite_project: Project) -> None:
    import time

    started = time.monotonic()
    result = sqlite_project.cli("--connect-timeout", "3", "status",
                                extra_env={"AFTERPARTY_DATABASE_URL": "postgresql://root@127.0.0.1:1/x"})
    assert result.code == 4
    assert time.monotonic() - started >= 2.5  # it kept trying instead of giving up at once
    assert "within 3 s" in result.err


@pytest.mark.parametrize(("backend", "pip_extra"), [("postgresql", "postgres"), ("mysql", "mysql")])
def test_missing_driver_names_the_pip_command(tmp_path: Path, sqlite_project: Project,
                                              backend: str, pip_extra: str) -> None:
    """A real interpreter without the drivers: afterparty and click only."""
    import click

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = tmp_path / "packages"
    shutil.copytree(os.path.dirname(click.__file__), packages / "click")
    site = next(venv.glob("lib/python*/site-packages"))
    src = Path(__file__).resolve().parent.parent / "src"
    (site / "paths.pth").write_text(f"{src}\n{packages}\n")
    url = f"{backend}://root:{SECRET}@127.0.0.1/test"
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "afterparty", "run"],
                          cwd=sqlite_project.root, capture_output=True, text=True, check=False,
                          env={**sqlite_project.env, "AFTERPARTY_DATABASE_URL": url})
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"pip install 'afterparty[{pip_extra}]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert SECRET not in done.stdout + done.stderr


def test_postgres_read_only_database(sqlite_project: Project, postgresql_url: str) -> None:
    database = postgresql_url.rsplit("/", 1)[1]
    query(postgresql_url, f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    sqlite_project.write_task("20260101000001", "one")
    env = {"AFTERPARTY_DATABASE_URL": postgresql_url}
    result = sqlite_project.cli("run", extra_env=env)
    assert result.code == 4, result.both
    assert "read-only" in result.err and len(result.err.strip().splitlines()) == 1
    assert sqlite_project.cli("status", extra_env=env).code == 0  # reading still works


def test_mysql_read_only_server(sqlite_project: Project, mysql_url: str) -> None:
    import pymysql

    sqlite_project.write_task("20260101000001", "one")
    admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")
        result = sqlite_project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": mysql_url})
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = OFF")
        admin.close()
    assert result.code == 4, result.both
    assert "read-only" in result.err and len(result.err.strip().splitlines()) == 1
