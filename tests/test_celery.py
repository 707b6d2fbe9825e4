"""Background tasks on Celery: a real Redis broker (Debian's redis-server, started here on a free
port) and real worker processes (``celery -A worker_app worker``). Each scenario is what a user
would see: the deploy queues the task and goes on, a worker runs it once, a killed worker's task
is resumed from its checkpoint, and a second delivery of the same message does nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Project, stop, unavailable, wait_until

VERSION = "20260101000000"
WORKER_APP = """\
import os

from celery import Celery

app = Celery("app", broker=os.environ["BROKER_URL"], include=["afterparty.contrib.celery"])
app.conf.broker_connection_retry_on_startup = True
# One message at a time per worker: the others stay in the queue for the next worker.
app.conf.worker_prefetch_multiplier = 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own: no snapshot, no append-only file, killed at the end."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    directory = tmp_path / "redis"
    directory.mkdir()
    log = directory / "redis.log"
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (log.exists() and "Ready to accept connections" in log.read_text())
                   or process.poll() is not None, "redis-server ready")
        assert process.poll() is None, log.read_text()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


@pytest.fixture
def celery_project(project: Project, redis_url: str) -> Project:
    """A project whose background tasks go to its Celery app (worker_app.py) on the test's Redis."""
    (project.root / "worker_app.py").write_text(WORKER_APP)
    (project.root / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.afterparty]\ncelery_app = "worker_app:app"\n')
    project.env["BROKER_URL"] = redis_url
    return project


class Workers:
    """The test's Celery workers, each a real ``celery worker`` process, all killed at the end."""

    def __init__(self, project: Project, directory: Path) -> None:
        self.project = project
        self.directory = directory
        self.processes: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def start(self, extra_env: dict[str, str] | None = None) -> int:
        """Start one and wait for its "ready" line; returns its number."""
        number = len(self.processes)
        log = self.directory / f"worker{number}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker_app", "worker", "--pool", "solo",
                 "--concurrency", "1", "--without-heartbeat", "--without-gossip",
                 "--without-mingle", "--loglevel", "INFO", "--hostname", f"worker{number}@%h"],
                cwd=self.project.root, env={**self.project.env, **(extra_env or {})}, stdout=out,
                stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        self.logs.append(log)
        wait_until(lambda: " ready." in log.read_text() or process.poll() is not None,
                   f"worker {number} ready")
        assert process.poll() is None, log.read_text()
        return number

    def log(self, number: int) -> str:
        return self.logs[number].read_text()

    def kill(self, number: int) -> None:
        self.processes[number].send_signal(signal.SIGKILL)
        self.processes[number].wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)


@pytest.fixture
def workers(celery_project: Project, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(celery_project, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def state_of(project: Project, version: str = VERSION) -> str | None:
    rows = project.query(f"SELECT state FROM afterparty_tasks WHERE version = '{version}'")
    return str(rows[0][0]) if rows else None


def attempts(project: Project, version: str = VERSION) -> list[tuple[str, str]]:
    rows = project.query(f"SELECT action, state FROM afterparty_attempts WHERE version = '{version}' "
                         "ORDER BY id")
    return [(str(action), str(state)) for action, state in rows]


def send_again(project: Project, version: str = VERSION) -> None:
    """Deliver the task's message once more, as Celery may (acks late, a visibility timeout),
    as the deploy sent it (with the records' place)."""
    script = (
        "from afterparty.background.sending import load_app, message_for, send\n"
        "from afterparty.config import load_settings\n"
        "from afterparty.session import Session\n"
        "settings = load_settings()\n"
        "session = Session(settings)\n"
        "environment_id = session.recorder.environment_id()\n"
        "place = session.database.dialect.place(session.database)\n"
        "session.close()\n"
        f"send(load_app(settings), message_for(settings, {version!r}, None, environment_id, place))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def gate_task(project: Project, gate: Path, started: Path, options: str = "") -> None:
    """A background task that says it started, then waits for the test to open its gate."""
    project.write_task(VERSION, "backfill", f"""
        import os, time
        open({str(started)!r}, "w").close()
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        print("the backfill ran")
    """, options=f'description="backfill", background=True{options}')


def test_the_deploy_queues_it_and_a_worker_runs_it(celery_project: Project, workers: Workers,
                                                    tmp_path: Path) -> None:
    project = celery_project
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate_task(project, gate, started)

    deploy = project.cli("run")
    assert deploy.code == 0, deploy.both
    assert f"{VERSION} backfill queued for a Celery worker" in deploy.out
    assert "1 queued for Celery workers" in deploy.out
    assert state_of(project) == "queued"
    assert "queued" in project.cli("status").out
    gate_says = project.cli("verify")
    assert gate_says.code == 6 and f"{VERSION} backfill: queued - sent to a background worker" \
        in gate_says.out, gate_says.both

    workers.start()
    wait_until(started.exists, "the worker starting the task")
    status = project.cli("status")
    assert "running on worker " in status.out, status.out
    rows = json.loads(project.cli("status", "--json").out)["tasks"]
    assert rows[0]["state"] == "running" and rows[0]["reason"].startswith("running on worker ")

    # A deploy while it runs leaves it to its worker: not interrupted, not sent again.
    again = project.cli("run")
    assert again.code == 0, again.both
    assert "running on a worker" in again.out
    assert state_of(project) == "running"

    assert "running on worker " in project.cli("verify").out
    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task succeeding on the worker")
    assert project.cli("verify").code == 0
    assert attempts(project) == [("enqueue", "queued"), ("run", "succeeded")]
    shown = project.cli("show", VERSION)
    assert "the backfill ran" in shown.out and "note      sent to a Celery worker" in shown.out
    assert project.cli("run").out.strip() == "no pending tasks"


def test_a_run_never_requeues_a_task_a_worker_holds(celery_project: Project, workers: Workers,
                                                    tmp_path: Path) -> None:
    """A worker took the message between a run's read of the records (still `queued`) and the
    run's send: the run finds the lease held and neither records `queued` over the worker's
    attempt nor sends it again. The record is set back to `queued` by hand to stand for the read
    that came just before the worker's `running`."""
    project = celery_project
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate_task(project, gate, started)
    assert project.cli("run").code == 0
    workers.start()
    wait_until(started.exists, "the worker starting the task")
    project.query(f"UPDATE afterparty_tasks SET state = 'queued' WHERE version = '{VERSION}'")

    again = project.cli("run")

    assert again.code == 0, again.both
    assert "running on a worker" in again.out, again.out
    assert attempts(project) == [("enqueue", "queued"), ("run", "running")]
    # The stand-in read is over: the record is the worker's again, which moves it on from there.
    project.query(f"UPDATE afterparty_tasks SET state = 'running' WHERE version = '{VERSION}'")
    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task succeeding on the worker")
    assert attempts(project) == [("enqueue", "queued"), ("run", "succeeded")]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_no_decision_overwrites_a_task_a_worker_is_running(celery_project: Project, workers: Workers,
                                                           tmp_path: Path) -> None:
    project = celery_project
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate_task(project, gate, started)
    assert project.cli("run").code == 0
    workers.start()
    wait_until(started.exists, "the worker starting the task")

    for decision in (("skip", VERSION, "--reason", "not needed"), ("forget", VERSION),
                     ("mark-done", VERSION)):
        refused = project.cli(*decision)
        assert refused.code == 2, refused.both
        assert "a background worker holds its lease" in refused.err
        assert "Traceback" not in refused.both
    assert state_of(project) == "running"

    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task succeeding on the worker")
    assert attempts(project) == [("enqueue", "queued"), ("run", "succeeded")]


def test_wait_background_waits_and_exits_as_if_inline(celery_project: Project, workers: Workers) -> None:
    project = celery_project
    project.write_task(VERSION, "backfill", 'print("done on a worker")',
                       options='description="backfill", background=True')
    project.write_task("20260101000001", "broken", 'raise RuntimeError("the API said no")',
                       options='description="broken", background=True')
    workers.start()

    result = project.cli("run", "--wait-background", "--keep-going")
    assert result.code == 1, result.both
    assert f"{VERSION} backfill succeeded on worker " in result.out
    assert "20260101000001 broken failed on worker " in result.out
    assert "RuntimeError: the API said no" in result.out
    assert state_of(project) == "succeeded"

    project.write_task("20260101000002", "more", "pass",
                       options='description="more", background=True')
    report = json.loads(project.cli("run", "20260101000002", "--wait-background", "--json").out)
    assert report["exit_code"] == 0
    assert [(b["version"], b["state"]) for b in report["background"]] == [("20260101000002", "succeeded")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_stops_the_waiting_not_the_task(celery_project: Project, workers: Workers,
                                                tmp_path: Path) -> None:
    project = celery_project
    gate, started, log = tmp_path / "gate", tmp_path / "started", tmp_path / "deploy.log"
    gate_task(project, gate, started)
    workers.start()
    deploy = project.popen_logged("run", "--wait-background", log=log)
    try:
        wait_until(started.exists, "the worker starting the task")
        wait_until(lambda: "waiting for 1 background task(s)" in log.read_text(), "the deploy waiting")
        deploy.send_signal(signal.SIGTERM)
        assert deploy.wait(timeout=60) == 143
    finally:
        stop(deploy)
    assert "stopped waiting: the background tasks go on on their workers" in log.read_text()
    assert state_of(project) == "running"
    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task finishing on its worker")


def test_a_second_delivery_does_nothing(celery_project: Project, workers: Workers,
                                        tmp_path: Path) -> None:
    project = celery_project
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate_task(project, gate, started)
    assert project.cli("run").code == 0
    first, second = workers.start(), workers.start()
    wait_until(started.exists, "a worker starting the task")

    # While one worker runs it, the other gets the same message: the lease is taken.
    send_again(project)
    wait_until(lambda: "another worker is running it; nothing to do" in
               workers.log(first) + workers.log(second), "the second delivery giving up")
    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task succeeding")

    # After it is done, the same message once more: the record says done.
    send_again(project)
    wait_until(lambda: f"{VERSION} is succeeded: nothing to do" in
               workers.log(first) + workers.log(second), "the late delivery doing nothing")
    assert attempts(project) == [("enqueue", "queued"), ("run", "succeeded")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_database_password_travels_and_a_worker_on_other_records_runs_nothing(
        celery_project: Project, workers: Workers, tmp_path: Path) -> None:
    project = celery_project
    project.write_task(VERSION, "backfill", 'print("ran")', options="background=True")
    assert project.cli("run").code == 0
    other = workers.start({"AFTERPARTY_DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}"})

    wait_until(lambda: "are not the ones of the run that queued it" in workers.log(other),
               "the worker on other records refusing")
    assert state_of(project) == "queued"
    from conftest import query

    assert query(f"sqlite:///{tmp_path / 'other.sqlite3'}",
                 "SELECT name FROM sqlite_master WHERE name LIKE 'afterparty%'") == []
    workers.stop_all()

    # The same worker, given the deploy's records, runs what is still queued when sent again.
    send_again(project)
    right = workers.start()
    wait_until(lambda: state_of(project) == "succeeded", "the right worker running it")
    assert "database_url" not in workers.log(right) + workers.log(other)


BATCHES = 20


def backfill_in_batches(project: Project, table: str, marker: Path, gate: Path | None = None) -> None:
    """The issue's backfill: a checkpoint per batch, each batch's rows committed with it. With
    ``gate``, the attempt that committed the fifth batch goes on only once that file exists."""
    wait_for_gate = f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)" if gate else ""
    project.write_task(VERSION, "backfill", f"""
        import os, time
        for i in range(ctx.checkpoint.get(0), {BATCHES}):
            with ctx.batch(checkpoint=i + 1):
                ctx.db.execute("INSERT INTO {table} (batch) VALUES (%s)", (i,))
            ctx.progress(i + 1, total={BATCHES})
            if i == 4:
                open({str(marker)!r}, "w").close()
                {wait_for_gate}
            time.sleep(0.1)
    """, options='description="backfill", atomic=False, background=True')


@pytest.mark.parametrize("resumed_by", ["the next run", "a second delivery"])
def test_a_killed_worker_s_task_resumes_from_its_checkpoint(celery_project: Project, workers: Workers,
                                                           tmp_path: Path, resumed_by: str) -> None:
    project = celery_project
    project.query("CREATE TABLE backfilled (batch INTEGER)")
    marker = tmp_path / "five_batches_done"
    backfill_in_batches(project, "backfilled", marker)
    assert project.cli("run").code == 0

    first = workers.start()
    wait_until(marker.exists, "the worker committing five batches")
    workers.kill(first)
    assert state_of(project) == "running"
    done_before = len(project.query("SELECT batch FROM backfilled"))
    assert 5 <= done_before < BATCHES

    if resumed_by == "the next run":
        # The next deploy finds its lease free: the worker is gone, so the task is interrupted
        # and sent again.
        deploy = project.cli("run")
        assert deploy.code == 0, deploy.both
        assert f"found {VERSION} left running by a runner that died: marked interrupted" in deploy.out
    else:
        # Celery delivers the message again (acks late): the worker that gets it takes the
        # free lease, records the dead worker's attempt interrupted and resumes it.
        send_again(project)
    workers.start()
    wait_until(lambda: state_of(project) == "succeeded", "the task resumed and succeeding")

    batches = sorted(int(str(b)) for (b,) in project.query("SELECT batch FROM backfilled"))
    assert batches == list(range(BATCHES))  # every batch exactly once
    sent_again = [("enqueue", "queued")] if resumed_by == "the next run" else []
    assert attempts(project) == [("enqueue", "queued"), ("run", "interrupted"), *sent_again,
                                 ("run", "succeeded")]
    progress = json.loads(project.cli("status", "--json").out)["tasks"][0]["progress"]
    assert progress["done"] == BATCHES


def test_a_held_task_of_a_killed_worker_waits_for_a_person(celery_project: Project, workers: Workers,
                                                            tmp_path: Path) -> None:
    project = celery_project
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate_task(project, gate, started, options=', on_interrupt="hold"')
    assert project.cli("run").code == 0
    first = workers.start()
    wait_until(started.exists, "the worker starting the task")
    workers.kill(first)

    held = project.cli("run")
    assert held.code == 5, held.both
    assert f"resolve {VERSION} --retry" in held.err
    assert state_of(project) == "interrupted"

    gate.touch()
    assert project.cli("resolve", VERSION, "--retry").code == 0
    assert project.cli("run").code == 0
    workers.start()
    wait_until(lambda: state_of(project) == "succeeded", "the retried task succeeding")


def test_a_broker_that_cannot_be_reached_fails_the_task_not_the_records(
        celery_project: Project) -> None:
    project = celery_project
    project.env["BROKER_URL"] = f"redis://:secret@127.0.0.1:{free_port()}/0"
    project.write_task(VERSION, "backfill", "pass", options='description="backfill", background=True')
    project.write_task("20260101000001", "later", "pass")
    result = project.cli("run", timeout=180)
    assert result.code == 1, result.both
    assert "could not send it to a Celery worker" in result.out
    assert "secret" not in result.both
    assert state_of(project) == "failed"
    assert attempts(project) == [("enqueue", "failed")]
    assert state_of(project, "20260101000001") is None  # a failure stops the run, as inline


def test_no_celery_app_is_a_configuration_error(sqlite_project: Project) -> None:
    sqlite_project.write_task(VERSION, "backfill", "pass",
                              options='description="backfill", background=True')
    result = sqlite_project.cli("run")
    assert result.code == 2, result.both
    assert "set celery_app" in result.err
    assert "Traceback" not in result.both


def test_a_dry_run_says_what_would_be_queued_and_what_would_wait_for_it(sqlite_project: Project) -> None:
    sqlite_project.write_task(VERSION, "backfill", "pass",
                              options='description="backfill", background=True')
    sqlite_project.write_task("20260101000001", "after", "pass",
                              options=f'description="after", depends_on=["{VERSION}"]')

    result = sqlite_project.cli("run", "--dry-run")

    assert result.code == 0, result.both
    assert f"would queue for a Celery worker {VERSION} backfill" in result.out
    assert "would wait 20260101000001: depends on" in result.out
    assert sqlite_project.cli("status", "--json").code == 0


def end_the_lease_session(project: Project, url: str) -> None:
    """End the database session that keeps the task's lease (as a DBA, an idle timeout or the
    network would); the worker's own session stays."""
    if url.startswith("postgresql"):
        advisory = ("FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        project.query(f"SELECT pg_terminate_backend(pid) {advisory}")
        # The backend ends, and frees its locks, a moment after it is told to.
        wait_until(lambda: project.query(f"SELECT count(*) {advisory}") == [(0,)],
                   "the terminated session's lease freed")
        return
    from afterparty.backends import open_database
    from afterparty.backends.url import parse_url
    from afterparty.lease import lock_name

    database = open_database(parse_url(url))
    try:
        name = database.lock(lock_name("afterparty_", VERSION)).name  # type: ignore[attr-defined]
    finally:
        database.close()
    ((holder,),) = project.query(f"SELECT IS_USED_LOCK('{name}')")
    assert holder is not None, "the worker holds the task's lease"
    project.query(f"KILL {int(str(holder))}")
    wait_until(lambda: project.query(f"SELECT IS_USED_LOCK('{name}')") == [(None,)],
               "the killed session's lease freed")


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_a_worker_that_lost_its_lease_commits_nothing_more(tmp_path: Path, database_url: str,
                                                           redis_url: str) -> None:
    """The lease is fenced: a worker whose lease session was killed (the task's lease is then
    free) cannot commit another batch once a run has taken the lease and moved its epoch on."""
    from conftest import clean_env

    root = tmp_path / "app"
    (root / "release_tasks").mkdir(parents=True)
    project = Project(root, database_url, clean_env(database_url))
    (root / "worker_app.py").write_text(WORKER_APP)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.afterparty]\ncelery_app = "worker_app:app"\n')
    project.env["BROKER_URL"] = redis_url
    project.query("CREATE TABLE backfilled (batch INTEGER)")
    marker = tmp_path / "five_batches_done"
    # The old attempt waits after its fifth batch until the deploy has taken its lease over:
    # under load it would otherwise finish all its batches before the deploy starts.
    deploy_done = tmp_path / "deploy_done"
    backfill_in_batches(project, "backfilled", marker, gate=deploy_done)
    assert project.cli("run").code == 0

    workers = Workers(project, tmp_path)
    try:
        workers.start()
        wait_until(marker.exists, "the worker committing five batches")
        # The worker holds no lock but its task's lease: end the session that keeps it.
        end_the_lease_session(project, database_url)
        deploy = project.cli("run")
        deploy_done.touch()
        assert deploy.code == 0, deploy.both
        assert f"found {VERSION} left running by a runner that died" in deploy.out
        wait_until(lambda: "lost the task's lease" in workers.log(0), "the old attempt refused")
        wait_until(lambda: state_of(project) == "succeeded", "the task resumed and succeeding")
    finally:
        workers.stop_all()
    batches = sorted(int(str(b)) for (b,) in project.query("SELECT batch FROM backfilled"))
    assert batches == list(range(BATCHES))  # the old attempt's next batch was rolled back


def slow_import_task(project: Project, gate: Path, loading: Path, ledger: Path) -> None:
    """A background task whose file takes a while to import on a worker (SLOW_IMPORT set): it
    says it is loading, then waits for the test to open its gate; its body leaves a line."""
    project.write_task(VERSION, "backfill", f'open({str(ledger)!r}, "a").write("ran\\n")',
                       options='description="backfill", background=True', header=f"""
        import os, time
        if os.environ.get("SLOW_IMPORT"):
            open({str(loading)!r}, "w").close()
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
    """)


def test_no_decision_is_taken_while_a_worker_loads_the_task(celery_project: Project,
                                                            workers: Workers, tmp_path: Path) -> None:
    """A worker holds the task's lease but has not yet recorded it running (it is importing the
    task file): skip, forget and mark-done are refused (exit 2, nothing changed), and the worker
    then runs the task once, as queued."""
    project = celery_project
    gate, loading, ledger = tmp_path / "gate", tmp_path / "loading", tmp_path / "ledger"
    slow_import_task(project, gate, loading, ledger)
    assert project.cli("run").code == 0
    workers.start({"SLOW_IMPORT": "1"})
    wait_until(loading.exists, "the worker importing the task file")

    for decision in (("skip", VERSION, "--reason", "not needed"), ("forget", VERSION),
                     ("mark-done", VERSION)):
        refused = project.cli(*decision)
        assert refused.code == 2, refused.both
        assert "a background worker holds its lease" in refused.err and "nothing was changed" in refused.err
        assert state_of(project) == "queued"

    gate.touch()
    wait_until(lambda: state_of(project) == "succeeded", "the task succeeding on the worker")
    assert ledger.read_text() == "ran\n"
    assert attempts(project) == [("enqueue", "queued"), ("run", "succeeded")]


def test_a_decision_taken_before_a_worker_starts_stands(celery_project: Project, workers: Workers,
                                                        tmp_path: Path) -> None:
    """Skipped while queued, before any worker took it: the worker that gets the message later
    runs nothing and records nothing over the decision."""
    project = celery_project
    gate, loading, ledger = tmp_path / "gate", tmp_path / "loading", tmp_path / "ledger"
    slow_import_task(project, gate, loading, ledger)
    assert project.cli("run").code == 0
    assert project.cli("skip", VERSION, "--reason", "done by hand").code == 0
    number = workers.start()
    wait_until(lambda: "is skipped: nothing to do" in workers.log(number), "the worker doing nothing")
    assert state_of(project) == "skipped" and not ledger.exists()
    assert attempts(project) == [("enqueue", "queued"), ("skip", "skipped")]


def test_wait_background_runs_what_waited_on_a_background_task(celery_project: Project,
                                                               workers: Workers) -> None:
    """An inline task depends on a background one: with --wait-background it runs in the same
    command, as soon as its dependency succeeded on a worker."""
    project = celery_project
    project.write_task(VERSION, "backfill", 'print("filled")',
                       options='description="backfill", background=True')
    project.write_task("20260101000001", "announce", 'print("announced")',
                       options='description="announce", depends_on=["backfill"]')
    workers.start()

    result = project.cli("run", "--wait-background")

    assert result.code == 0, result.both
    assert "announce waiting: depends on" in result.out
    assert f"{VERSION} backfill succeeded on worker " in result.out
    assert "20260101000001 announce succeeded" in result.out
    assert "after the background tasks: 1 succeeded" in result.out
    assert state_of(project, "20260101000001") == "succeeded"
    assert project.cli("run").out.strip() == "no pending tasks"


def dies_once_task(project: Project, started: Path) -> None:
    """A background task whose first attempt blocks (until its worker is killed) and whose
    next attempt finishes."""
    project.write_task(VERSION, "backfill", f"""
        import os, time
        if not os.path.exists({str(started)!r}):
            open({str(started)!r}, "w").close()
            while True:
                time.sleep(0.05)
        print("finished on the second try")
    """, options='description="backfill", background=True')


def test_a_dead_worker_is_noticed_and_its_task_sent_again_within_seconds(
        celery_project: Project, workers: Workers, tmp_path: Path) -> None:
    """The worker running a task is SIGKILLed (OOM, a lost node): `status` says its worker is
    gone (no frozen progress), and `run --wait-background` does not wait for the broker's
    visibility timeout (an hour): it finds the lease free, records the task interrupted and
    sends it again, and another worker finishes it."""
    project = celery_project
    started = tmp_path / "started"
    dies_once_task(project, started)
    first = workers.start()
    waiting = project.popen("run", "--wait-background")
    try:
        wait_until(started.exists, "the first worker running the task")
        assert "running on worker" in project.cli("status").out
        workers.kill(first)
        workers.start()
        out, err = waiting.communicate(timeout=90)
    finally:
        stop(waiting)
    assert waiting.returncode == 0, out + err
    assert f"{VERSION} backfill interrupted on worker " in out, out
    assert "its worker is gone; it is sent to a worker again" in out, out
    assert f"{VERSION} backfill succeeded on worker " in out, out
    assert state_of(project) == "succeeded"
    assert [a for a in attempts(project)] == [
        ("enqueue", "queued"), ("run", "interrupted"), ("enqueue", "queued"), ("run", "succeeded")]


def test_status_and_verify_say_a_killed_worker_is_gone(celery_project: Project, workers: Workers,
                                                       tmp_path: Path) -> None:
    project = celery_project
    started = tmp_path / "started"
    dies_once_task(project, started)
    number = workers.start()
    assert project.cli("run").code == 0
    wait_until(started.exists, "the worker running the task")
    workers.kill(number)

    status = project.cli("status")
    assert "its worker is gone" in status.out and "left" not in status.out, status.out
    verify = project.cli("verify")
    assert verify.code == 6 and "its worker is gone" in verify.both, verify.both


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_worker_given_a_copy_of_the_records_runs_nothing(celery_project: Project,
                                                           workers: Workers, tmp_path: Path) -> None:
    """A restored backup, a staging clone, a file baked into an image: the copy says it is the
    same environment (its identity row came along), but it is another database, and a worker
    configured with it runs nothing there; the task stays queued for a worker on the real one."""
    project = celery_project
    project.write_task(VERSION, "backfill", 'print("ran")', options="background=True")
    assert project.cli("run").code == 0
    if project.database_url.startswith("sqlite"):
        copy_path = tmp_path / "copy.sqlite3"
        shutil.copyfile(project.database_url.removeprefix("sqlite:///"), copy_path)
        copy = f"sqlite:///{copy_path}"
    else:
        import psycopg

        base, name = project.database_url.rsplit("/", 1)
        with psycopg.connect(project.database_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}_copy TEMPLATE {name}")
        copy = f"{base}/{name}_copy"
    try:
        worker = workers.start({"AFTERPARTY_DATABASE_URL": copy})
        wait_until(lambda: "are a copy of the ones of the run that queued it" in workers.log(worker),
                   "the worker on the copy refusing")
        assert state_of(project) == "queued"
        workers.stop_all()
        send_again(project)
        workers.start()
        wait_until(lambda: state_of(project) == "succeeded", "a worker on the real records")
    finally:
        workers.stop_all()
        if not copy.startswith("sqlite"):
            with psycopg.connect(project.database_url.rsplit("/", 1)[0] + "/postgres",
                                 autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name}_copy WITH (FORCE)")



def test_a_person_pauses_a_backfill_on_a_worker_and_it_resumes_from_its_checkpoint(
        celery_project: Project, workers: Workers, tmp_path: Path) -> None:
    """`pause` reaches the worker (no lock needed): it stops after its current batch, paused;
    `resume` and the next deploy send it again, and a worker goes on from the checkpoint."""
    project = celery_project
    project.query("CREATE TABLE backfilled (batch INTEGER)")
    marker, gate = tmp_path / "five_batches_done", tmp_path / "gate"
    backfill_in_batches(project, "backfilled", marker, gate)
    assert project.cli("run").code == 0
    workers.start()
    wait_until(marker.exists, "the worker committing five batches")
    assert project.cli("pause", VERSION, "--note", "peak hours").code == 0
    gate.touch()
    wait_until(lambda: state_of(project) == "paused", "the worker pausing the task")
    done_before = len(project.query("SELECT batch FROM backfilled"))
    assert 5 <= done_before < BATCHES
    assert project.cli("run").out.strip() == "no pending tasks"

    assert project.cli("resume", VERSION).code == 0
    assert project.cli("run").code == 0
    wait_until(lambda: state_of(project) == "succeeded", "the task resumed and succeeding")
    batches = sorted(int(str(b)) for (b,) in project.query("SELECT batch FROM backfilled"))
    assert batches == list(range(BATCHES))  # every batch exactly once
