"""Unreachable, misconfigured, read-only databases and missing drivers: one line, exit 4."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import MYSQL_ADMIN, Project, query, stop, wait_until

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


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_database_that_does_not_exist_fails_at_once(sqlite_project: Project, backend: str,
                                                      request: pytest.FixtureRequest) -> None:
    """A mistyped database name is the server's answer, not a server restarting: one line and
    exit 4 at once, not after the 30 s of retries an unreachable server gets."""
    server = str(request.getfixturevalue(f"{backend}_url")).rsplit("/", 1)[0]
    started = time.monotonic()
    result = sqlite_project.cli("status", extra_env={"AFTERPARTY_DATABASE_URL": f"{server}/shopp_typo"})
    assert result.code == 4, result.both
    assert time.monotonic() - started < 10
    (line,) = result.err.strip().splitlines()
    assert "shopp_typo" in line and "within" not in line
    assert ("does not exist" if backend == "postgresql" else "Unknown database") in line


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


def test_mysql_user_without_write_grants(sqlite_project: Project, mysql_url: str) -> None:
    """A deploy user that may only read (a replica's or a reporting account): nothing runs,
    and the one line says which statement the server refused; reading still works."""
    import uuid

    import pymysql

    database = mysql_url.rsplit("/", 1)[1]
    user = f"ap_ro_{uuid.uuid4().hex[:10]}"
    account = f"'{user}'@'{MYSQL_ADMIN['host']}'"
    reader_url = mysql_url.replace(f"//{MYSQL_ADMIN['user']}@", f"//{user}@")
    marker = sqlite_project.root / "ran"
    admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER {account}")
            cursor.execute(f"GRANT SELECT ON {database}.* TO {account}")
        for first_run in (True, False):  # no tables yet; then records made by a writer
            if not first_run:
                assert sqlite_project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": mysql_url}).code == 0
            sqlite_project.write_task(f"2026010100000{int(first_run)}", f"task_{int(first_run)}",
                                      f"open({str(marker)!r}, 'a').write('ran')")
            marker.unlink(missing_ok=True)
            result = sqlite_project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": reader_url})
            assert result.code == 4, result.both
            lines = result.err.strip().splitlines()
            assert len(lines) == 1 and "command denied to user" in lines[0], result.err
            assert user in lines[0] and "Traceback" not in result.both
            assert not marker.exists()
            status = sqlite_project.cli("status", extra_env={"AFTERPARTY_DATABASE_URL": reader_url})
            assert status.code == 0, status.both
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS {account}")
        admin.close()


class FrozenServer:
    """A TCP endpoint of the test's own that looks like a frozen database server: it accepts
    connections and never answers (``target`` None), or it forwards to the real server until
    ``freeze()``, after which it passes nothing either way and keeps every connection open."""

    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def freeze(self) -> None:
        self.frozen.set()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.sockets.append(client)
            if self.target is not None:
                server = socket.create_connection(self.target)
                self.sockets.append(server)
                pump = threading.Thread(target=self._pump, args=(client, server), daemon=True)
                self.threads.append(pump)
                pump.start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peer = {client: server, server: client}
        while not self.stopped.is_set():
            if self.frozen.is_set():
                self.stopped.wait(0.1)
                continue
            try:
                readable, _, _ = select.select([client, server], [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self.threads:
            thread.join(timeout=5)


# The README's bound for a frozen server: about twice --connect-timeout (one read times out,
# then giving the lock back does); the margin is for starting Python on a loaded machine.
CONNECT_TIMEOUT = 2
FROZEN_BOUND = 2 * CONNECT_TIMEOUT
# Mid-run, the README's bound: the record write, a new session to record the outcome, and
# giving the lock back may each wait --connect-timeout.
FROZEN_MID_RUN_BOUND = 4 * CONNECT_TIMEOUT
MARGIN = 4


@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
def test_server_frozen_before_the_handshake_gives_exit_4(sqlite_project: Project, scheme: str) -> None:
    """The port answers, the server never says a word."""
    frozen = FrozenServer()
    try:
        url = f"{scheme}://root@127.0.0.1:{frozen.port}/records"
        sqlite_project.write_task("20260101000001", "one")
        started = time.monotonic()
        result = sqlite_project.cli("--connect-timeout", str(CONNECT_TIMEOUT), "run", timeout=60,
                                    extra_env={"AFTERPARTY_DATABASE_URL": url})
        elapsed = time.monotonic() - started
    finally:
        frozen.close()
    assert result.code == 4, result.both
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"127.0.0.1:{frozen.port}" in result.err
    assert elapsed < FROZEN_BOUND + MARGIN, elapsed


@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
def test_server_frozen_mid_run_gives_exit_4(sqlite_project: Project, request: pytest.FixtureRequest,
                                            scheme: str) -> None:
    """The server stops answering while a task runs: the runner's next record write must not
    wait for ever."""
    from urllib.parse import urlsplit

    real = urlsplit(request.getfixturevalue(f"{scheme}_url"))
    assert real.hostname and real.port
    frozen = FrozenServer((real.hostname, real.port))
    url = real._replace(netloc=real.netloc.replace(f":{real.port}", f":{frozen.port}")).geturl()
    started, go = sqlite_project.root / "started", sqlite_project.root / "go"
    sqlite_project.write_task("20260101000001", "waits", f"""
        import os, time
        open({str(started)!r}, "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
    """)
    runner = sqlite_project.popen("--connect-timeout", str(CONNECT_TIMEOUT), "run",
                                  extra_env={"AFTERPARTY_DATABASE_URL": url})
    try:
        wait_until(started.exists, "the task starting")
        frozen.freeze()
        go.touch()
        since_go = time.monotonic()
        out, err = runner.communicate(timeout=60)
        elapsed = time.monotonic() - since_go
    finally:
        stop(runner)
        frozen.close()
    assert runner.returncode == 4, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # The record write times out, or, when the runner tries a new session to record the
    # outcome, connecting does: either way one line that says the server did not answer.
    assert any(word in lines[0] for word in ("no answer", "timed out", "timeout expired")), lines[0]
    assert "Traceback" not in out + err
    assert elapsed < FROZEN_MID_RUN_BOUND + MARGIN, elapsed
