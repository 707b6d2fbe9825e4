"""The environment lock when things go wrong around it: its session ended mid-task or between
tasks, an idle timeout, a first run killed while it made the tables, and a SQLite file reached
through other paths. Real servers, real runner processes."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from afterparty.records import SCHEMA_VERSION
from conftest import Project, stop, wait_until

SERVERS = pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
VERSIONS = ["20260101000001", "20260101000002", "20260101000003"]


def backend_of(project: Project) -> str:
    return project.database_url.split(":", 1)[0]


def lock_sessions(project: Project, prefix: str = "afterparty_") -> list[int]:
    """The server sessions holding an environment lock of this test's database."""
    if backend_of(project) == "postgresql":
        # pg_locks is the whole server's: only this database's locks are ever looked at.
        rows = project.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())")
    else:
        rows = project.query(f"SELECT IS_USED_LOCK('{mysql_lock_name(project, prefix)}')")
    return [int(str(pid)) for pid, in rows if pid is not None]


def mysql_lock_name(project: Project, prefix: str) -> str:
    """The name NamedLock gives GET_LOCK: the server refuses names of 64 characters or more."""
    name = f"afterparty:{project.database_url.rsplit('/', 1)[1]}:{prefix}"
    if len(name) >= 64:
        name = f"{name[:46]}:{hashlib.blake2b(name.encode(), digest_size=8).hexdigest()}"
    return name


def end_lock_session(project: Project) -> None:
    """What a DBA, an idle timeout or a dropped connection does: only the lock's session ends."""
    holders = lock_sessions(project)
    assert len(holders) == 1, holders
    if backend_of(project) == "postgresql":
        project.query(f"SELECT pg_terminate_backend({holders[0]})")
    else:
        project.query(f"KILL {holders[0]}")
    wait_until(lambda: not lock_sessions(project), "the lock's session ending")


def started_then_wait(started: Path, go: Path) -> str:
    """Task code: say it started, then wait (bounded) for the test's go."""
    return textwrap.dedent(f"""
        import os, time
        open({str(started)!r}, "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
    """)


def write_tasks(project: Project, ledger: Path, started: Path, go: Path, count: int = 3) -> None:
    """Tasks that write a row through ctx.db and append to a ledger (an outside effect); the
    first attempt at the first one says it started, then waits for the test's go."""
    project.query("CREATE TABLE effects (version VARCHAR(14), pid INTEGER)")
    for number, version in enumerate(VERSIONS[:count], start=1):
        body = textwrap.dedent(f"""
            import os
            ctx.db.cursor().execute(
                "INSERT INTO effects (version, pid) VALUES ('%s', %d)" % (ctx.version, os.getpid()))
            with open({str(ledger)!r}, "a") as out:
                out.write("%s %d\\n" % (ctx.version, os.getpid()))
        """)
        if number == 1:
            body += "if ctx.attempt == 1:\n" + textwrap.indent(started_then_wait(started, go), "    ")
        project.write_task(version, f"task_{number}", body)


def ledger_lines(ledger: Path) -> list[tuple[str, int]]:
    return [(version, int(pid)) for version, pid in
            (line.split() for line in ledger.read_text().splitlines())]


@SERVERS
def test_runner_that_lost_its_lock_mid_task_commits_nothing(project: Project) -> None:
    """The lock's session ends while task 1 runs, and the next deploy takes the lock and runs
    everything. The first runner's database work never commits, it stops with exit 3, and only
    task 1's outside effect happened twice (outside effects cannot be fenced)."""
    ledger, started, go = project.root / "ledger", project.root / "started", project.root / "go"
    write_tasks(project, ledger, started, go)
    first = project.popen("run")
    try:
        wait_until(started.exists, "task 1 starting in the first runner")
        end_lock_session(project)
        second = project.cli("run")
        assert second.code == 0, second.both
        go.touch()
        out, err = first.communicate(timeout=60)
    finally:
        stop(first)

    assert first.returncode == 3, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "lost the environment lock" in lines[0], err
    effects = project.query("SELECT version, pid FROM effects ORDER BY version")
    assert [version for version, _ in effects] == VERSIONS  # once each: none from the first
    assert first.pid not in {pid for _, pid in effects}
    ran = ledger_lines(ledger)
    assert Counter(version for version, _ in ran) == {VERSIONS[0]: 2, VERSIONS[1]: 1, VERSIONS[2]: 1}
    assert [version for version, pid in ran if pid == first.pid] == [VERSIONS[0]]
    status = json.loads(project.cli("status", "--json").out)
    assert {t["version"]: t["state"] for t in status["tasks"]} == dict.fromkeys(VERSIONS, "succeeded")
    attempts = project.query("SELECT version, state, pid FROM afterparty_attempts ORDER BY id")
    assert [(version, state, pid == first.pid) for version, state, pid in attempts] == [
        (VERSIONS[0], "interrupted", True), (VERSIONS[0], "succeeded", False),
        (VERSIONS[1], "succeeded", False), (VERSIONS[2], "succeeded", False)]


@SERVERS
def test_task_on_hold_is_not_run_again_by_the_runner_that_took_the_lock(project: Project) -> None:
    """A task that must never repeat was running when its runner lost the lock: the next
    runner finds it interrupted and asks a person (exit 5) instead of running it again."""
    ledger, started, go = project.root / "ledger", project.root / "started", project.root / "go"
    project.write_task(VERSIONS[0], "charge_cards",
                       f"open({str(ledger)!r}, 'a').write('charged\\n')" + started_then_wait(started, go),
                       options='description="Charge once", on_interrupt="hold"')
    first = project.popen("run")
    try:
        wait_until(started.exists, "the task starting")
        end_lock_session(project)
        second = project.cli("run")
        go.touch()
        out, err = first.communicate(timeout=60)
    finally:
        stop(first)
    assert second.code == 5, second.both
    assert f"afterparty resolve {VERSIONS[0]}" in second.both
    assert first.returncode == 3, out + err
    assert ledger.read_text() == "charged\n"
    assert project.query("SELECT state FROM afterparty_tasks") == [("interrupted",)]


@SERVERS
def test_runner_whose_lock_session_ended_stops_before_the_next_task(project: Project) -> None:
    """No other runner came: the task that was running commits (nobody else could have), and
    the runner then sees that its lock is gone and stops before the next task with exit 3."""
    ledger, started, go = project.root / "ledger", project.root / "started", project.root / "go"
    write_tasks(project, ledger, started, go, count=2)
    first = project.popen("run")
    try:
        wait_until(started.exists, "task 1 starting")
        end_lock_session(project)
        go.touch()
        out, err = first.communicate(timeout=60)
    finally:
        stop(first)

    assert first.returncode == 3, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "lost the environment lock" in lines[0], err
    assert "before the next task" in lines[0]
    assert [version for version, _ in ledger_lines(ledger)] == [VERSIONS[0]]
    assert project.query("SELECT version, state FROM afterparty_attempts") == [(VERSIONS[0], "succeeded")]

    again = project.cli("run")
    assert again.code == 0, again.both
    assert [version for version, _ in ledger_lines(ledger)] == VERSIONS[:2]
    assert project.query("SELECT version FROM effects ORDER BY version") == [(v,) for v in VERSIONS[:2]]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_lock_session_outlives_an_idle_session_timeout(project: Project) -> None:
    """A DBA set idle_session_timeout on the database: the lock's session sits idle while a
    task runs, and must keep the lock anyway.

    MariaDB has no per-database or per-user wait_timeout, and a test may not change the
    server's global one, so this scenario is PostgreSQL's only.
    """
    database = project.database_url.rsplit("/", 1)[1]
    project.query(f"ALTER DATABASE {database} SET idle_session_timeout = '2s'")
    assert project.query("SELECT current_setting('idle_session_timeout')") == [("2s",)]
    ledger, started, go = project.root / "ledger", project.root / "started", project.root / "go"
    write_tasks(project, ledger, started, go, count=2)
    first = project.popen("run")
    try:
        wait_until(started.exists, "task 1 starting")
        since = time.monotonic()
        while time.monotonic() - since < 5:  # more than twice the timeout, lock held throughout
            assert len(lock_sessions(project)) == 1, "the runner lost its lock to the idle timeout"
            time.sleep(0.2)
        go.touch()
        out, err = first.communicate(timeout=60)
    finally:
        stop(first)
    assert first.returncode == 0, out + err
    assert project.query("SELECT version FROM effects ORDER BY version") == [(v,) for v in VERSIONS[:2]]


def create_tables_by_hand(project: Project, *roles: str) -> None:
    """Part of the records tables, as a first run killed between two CREATEs leaves them."""
    from afterparty.backends import mysql, postgresql, sqlite
    from afterparty.records import TABLES

    dialect = {"sqlite": sqlite.DIALECT, "postgresql": postgresql.DIALECT,
               "mysql": mysql.DIALECT}[backend_of(project)]
    types = {"name": "VARCHAR(255)", **dialect.column_types}
    for role in roles:
        project.query(TABLES[role].format(t=f"afterparty_{role}", **types) + dialect.table_options)


@pytest.mark.parametrize("made", [("meta", "tasks"), ("meta", "tasks", "attempts"),
                                  ("meta", "tasks", "attempts", "checkpoints")])
def test_run_heals_a_half_made_schema(project: Project, made: tuple[str, ...]) -> None:
    """A first run was killed while it created the tables (MySQL commits each CREATE by
    itself): some tables exist, no schema version. The next run makes the rest and runs."""
    create_tables_by_hand(project, *made)
    if "attempts" in made:  # the environment's identity was written, the schema version not
        project.query("INSERT INTO afterparty_meta (meta_key, meta_value) VALUES ('environment_id', 'e1')")
    ledger = project.root / "ledger"
    project.write_task(VERSIONS[0], "one", f"open({str(ledger)!r}, 'a').write('ran\\n')")

    result = project.cli("run")
    assert result.code == 0, result.both
    assert ledger.read_text() == "ran\n"
    meta = dict(project.query("SELECT meta_key, meta_value FROM afterparty_meta"))
    assert meta["schema"] == str(SCHEMA_VERSION)
    if "attempts" in made:
        assert meta["environment_id"] == "e1"  # idempotency keys are made from it: kept
    assert project.query("SELECT state FROM afterparty_attempts") == [("succeeded",)]
    assert project.cli("run").code == 0 and ledger.read_text() == "ran\n"


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
def test_run_killed_while_creating_the_tables_is_healed_by_the_next(project: Project) -> None:
    """A real SIGKILL mid-creation: the runner waits on a table another session is reading
    (a metadata lock) after making the first tables itself, and is killed there."""
    import pymysql

    from conftest import MYSQL_ADMIN

    create_tables_by_hand(project, "attempts")
    project.write_task(VERSIONS[0], "one")
    reader = pymysql.connect(**MYSQL_ADMIN, database=project.database_url.rsplit("/", 1)[1])
    with reader.cursor() as cursor:
        cursor.execute("START TRANSACTION")
        cursor.execute("SELECT COUNT(*) FROM afterparty_attempts")  # holds its metadata lock
    runner = project.popen("run")
    try:
        def waiting_ddl() -> list[tuple[object, ...]]:
            return project.query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                "AND STATE LIKE 'Waiting for table metadata lock%'")

        wait_until(waiting_ddl, "the runner waiting to finish the tables")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        wait_until(lambda: not waiting_ddl(), "the server dropping the killed runner's statement")
    finally:
        stop(runner)
        reader.rollback()
        reader.close()
    tables = {name for name, in project.query("SHOW TABLES")}
    assert {"afterparty_meta", "afterparty_tasks"} <= tables
    assert project.query("SELECT meta_value FROM afterparty_meta WHERE meta_key = 'schema'") == []

    result = project.cli("run")
    assert result.code == 0, result.both
    assert project.query("SELECT state FROM afterparty_attempts") == [("succeeded",)]
    assert project.query(
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        "AND INDEX_NAME = 'afterparty_attempts_version'") == [(1,)]


def hold_sqlite_lock(project: Project) -> tuple[subprocess.Popen[str], Path, Path]:
    started, go = project.root / "started", project.root / "go"
    project.write_task(VERSIONS[0], "slow", started_then_wait(started, go))
    first = project.popen("run")
    return first, started, go


@pytest.mark.parametrize("other_path", ["symlink to the file", "symlinked directory"])
def test_sqlite_file_reached_by_another_path_shares_the_lock(
        sqlite_project: Project, tmp_path: Path, other_path: str) -> None:
    """A deploy script and a cron job name the same SQLite file differently."""
    real = Path(sqlite_project.database_url.split("sqlite:///", 1)[1])
    links = tmp_path / "links"
    links.mkdir()
    if other_path == "symlink to the file":
        (links / "db.sqlite3").symlink_to(real)
        other = links / "db.sqlite3"
    else:
        (links / "dir").symlink_to(real.parent, target_is_directory=True)
        other = links / "dir" / real.name
    via_other = {"AFTERPARTY_DATABASE_URL": f"sqlite:///{other}"}
    first, started, go = hold_sqlite_lock(sqlite_project)
    try:
        wait_until(started.exists, "the first runner's task starting")
        busy = sqlite_project.cli("run", "--if-busy", "fail", extra_env=via_other)
        assert busy.code == 3, busy.both
        assert "another afterparty runner holds the lock" in busy.err
        go.touch()
        assert first.wait(timeout=60) == 0
    finally:
        stop(first)
    after = sqlite_project.cli("run", extra_env=via_other)
    assert after.code == 0, after.both
    assert sqlite_project.query("SELECT COUNT(*) FROM afterparty_attempts") == [(1,)]


def test_sqlite_lock_needs_no_file_beside_the_database(sqlite_project: Project) -> None:
    """Someone cleans up "stale lock files" during a run: there are none to delete, and a
    second runner is still kept out."""
    real = Path(sqlite_project.database_url.split("sqlite:///", 1)[1])
    first, started, go = hold_sqlite_lock(sqlite_project)
    try:
        wait_until(started.exists, "the first runner's task starting")
        for stale in real.parent.glob("*lock*"):
            stale.unlink()
        busy = sqlite_project.cli("run", "--if-busy", "fail")
        assert busy.code == 3, busy.both
        beside = {p.name for p in real.parent.iterdir() if p.name.startswith(real.name)}
        # SQLite's own write-ahead log and shared memory; no lock file of afterparty's.
        assert beside <= {real.name, f"{real.name}-wal", f"{real.name}-shm"}, beside
        go.touch()
        assert first.wait(timeout=60) == 0
    finally:
        stop(first)
    assert sqlite_project.query("SELECT COUNT(*) FROM afterparty_attempts") == [(1,)]


@SERVERS
def test_runner_sessions_send_keepalives_while_a_task_runs(project: Project) -> None:
    """A NAT or a firewall drops a connection that stays silent for minutes, and the lock's
    session is silent for as long as a task runs: the kernel must probe it well before that.
    (Keepalives live in the kernel, so this reads them as `ss` shows them.)"""
    import re
    import shutil
    from urllib.parse import urlsplit

    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2) to see the runner's sockets")
    port = urlsplit(project.database_url).port
    ledger, started, go = project.root / "ledger", project.root / "started", project.root / "go"
    write_tasks(project, ledger, started, go, count=1)
    first = project.popen("run")
    try:
        wait_until(started.exists, "task 1 starting")
        shown = subprocess.run(["ss", "-tnop", "state", "established", f"( dport = :{port} )"],
                               capture_output=True, text=True, check=True).stdout
        mine = [line for line in shown.splitlines() if f"pid={first.pid}," in line]
        assert len(mine) >= 2, shown  # its own session and the lock's
        for line in mine:
            timer = re.search(r"timer:\(keepalive,([^,]+),", line)
            assert timer and "min" not in timer.group(1), line  # the first probe within a minute
        go.touch()
        assert first.wait(timeout=60) == 0
    finally:
        stop(first)
