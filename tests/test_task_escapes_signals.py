"""Signals and timeouts against a task: in the middle of a statement on the server, in a task
that swallows every exception, while waiting to retry, and at the prompt of a human step. Each
ends promptly as a recorded outcome (issue 9, holes 5, 6 and 12). Measured exit times are
printed (run with -s to see them)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project
from test_task_escapes import appends, backend, states, stop, wait_until

# --- hole 5: a signal or a timeout in the middle of a statement ----------------------------

LONG_STATEMENT = {
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) "
              "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(20)",
    "mysql": "SELECT SLEEP(20)",
}


def statement_running(project: Project) -> bool:
    """Whether the server still runs the long statement (SQLite runs inside the runner)."""
    if backend(project) == "postgresql":
        return bool(project.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
            "AND query = 'SELECT pg_sleep(20)' AND pid <> pg_backend_pid()"))
    if backend(project) == "mysql":
        return bool(project.query(
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
            "AND INFO = 'SELECT SLEEP(20)' AND ID <> CONNECTION_ID()"))
    return False


def start_long_statement(project: Project, started: Path) -> subprocess.Popen[str]:
    runner = project.popen("run")
    try:
        wait_until(lambda: started.exists() or runner.poll() is not None, "the task to start")
        if backend(project) != "sqlite":
            wait_until(lambda: statement_running(project) or runner.poll() is not None,
                       "the statement to run on the server")
        assert runner.poll() is None, runner.communicate()
    except BaseException:
        stop(runner)
        raise
    return runner


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_long_statement_cancels_it_and_records_interrupted(
        project: Project, signum: int, code: int) -> None:
    """A deploy is stopped while a task waits on a long statement: the runner exits at once
    (143/130), the statement no longer runs on the server, the task is recorded interrupted."""
    started = project.root / "started"
    project.write_task("20260101000001", "long_statement", f"""
        open({str(started)!r}, "w").close()
        ctx.db.cursor().execute({LONG_STATEMENT[backend(project)]!r})
    """)
    runner = start_long_statement(project, started)
    try:
        sent = time.monotonic()
        runner.send_signal(signum)
        assert runner.wait(timeout=60) == code, runner.communicate()
        took = time.monotonic() - sent
    finally:
        stop(runner)
    print(f"\nexit {code} {took:.2f} s after {signal.Signals(signum).name} on {backend(project)}")
    assert took < 10
    assert states(project) == {"long_statement": "interrupted"}
    wait_until(lambda: not statement_running(project), "the server to end the statement", timeout=5)


def test_a_timeout_during_a_long_statement_fails_the_task_and_the_next_one_runs(project: Project) -> None:
    """`timeout=` stops a statement too: the task fails timed out, and the next task runs on a
    working connection."""
    project.query("CREATE TABLE shipped (note VARCHAR(20))")
    project.write_task("20260101000001", "long_statement",
                       f"ctx.db.cursor().execute({LONG_STATEMENT[backend(project)]!r})", options="timeout=2")
    project.write_task("20260101000002", "next_one",
                       "ctx.db.cursor().execute(\"INSERT INTO shipped VALUES ('next')\")")
    began = time.monotonic()
    result = project.cli("run", "--keep-going", timeout=60)
    took = time.monotonic() - began
    assert result.code == 1, result.both
    assert "long_statement failed" in result.out and "timed out after 2 s" in result.out
    assert "next_one succeeded" in result.out
    assert took < 15
    assert states(project) == {"long_statement": "failed", "next_one": "succeeded"}
    assert project.query("SELECT note FROM shipped") == [("next",)]
    assert not statement_running(project)


SWALLOWS_EVERYTHING = """
    import time
    open({started!r}, "w").close()
    try:
        time.sleep(60)
    except BaseException:
        pass
"""


def test_a_task_that_swallows_the_signal_is_still_recorded_interrupted(sqlite_project: Project) -> None:
    """`except BaseException: pass` cannot hide SIGTERM: the task is recorded interrupted."""
    started = sqlite_project.root / "started"
    sqlite_project.write_task("20260101000001", "swallows",
                              SWALLOWS_EVERYTHING.format(started=str(started)))
    sqlite_project.write_task("20260101000002", "later")
    runner = sqlite_project.popen("run")
    try:
        wait_until(started.exists, "the task to start")
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 143
    finally:
        stop(runner)
    assert states(sqlite_project) == {"swallows": "interrupted"}


def test_a_task_that_swallows_its_timeout_is_still_recorded_timed_out(sqlite_project: Project) -> None:
    """`except BaseException: pass` cannot hide its timeout: the task is recorded timed out."""
    started = sqlite_project.root / "started"
    sqlite_project.write_task("20260101000001", "swallows", SWALLOWS_EVERYTHING.format(started=str(started)),
                              options="timeout=1")
    result = sqlite_project.cli("run")
    assert result.code == 1, result.both
    assert "swallows failed" in result.out and "timed out after 1 s" in result.out
    assert states(sqlite_project) == {"swallows": "failed"}


# --- hole 6: a signal while waiting to retry -----------------------------------------------

def test_sigterm_while_waiting_to_retry_stops_at_once_and_the_task_stays_failed(
        sqlite_project: Project) -> None:
    """SIGTERM during a 30 s retry delay ends the run at once; no further attempt runs."""
    tries = sqlite_project.root / "tries"
    sqlite_project.write_task("20260101000001", "flaky", appends(tries, "try") + "\nraise RuntimeError('x')",
                              options="retries=3, retry_delay=30")

    def failed_once() -> bool:
        try:
            return states(sqlite_project) == {"flaky": "failed"}
        except Exception:  # the tables do not exist yet
            return False

    runner = sqlite_project.popen("run")
    try:
        wait_until(failed_once, "the first attempt to fail")
        sent = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 143
        took = time.monotonic() - sent
        _, err = runner.communicate()
    finally:
        stop(runner)
    print(f"\nexit 143 {took:.2f} s after SIGTERM in a retry delay")
    assert took < 10
    assert tries.read_text().split() == ["try"]
    assert states(sqlite_project) == {"flaky": "failed"}
    assert "stopped by SIGTERM: stopped while waiting to try 20260101000001_flaky again" in err, err


# --- hole 12: Ctrl-C at the prompt of a human step -----------------------------------------

def read_terminal(controller: int, until: bytes | None, timeout: float) -> bytes:
    """What the program wrote to its terminal, up to ``until`` (or its end)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (until is None or until not in seen):
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the program closed its terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def at_the_prompt(project: Project,
                  act: Callable[[subprocess.Popen[bytes], int], object]) -> tuple[int, float, str]:
    """Run `afterparty run` at a terminal and ``act`` once it asks "done?": its exit code, the
    seconds from ``act`` to its exit, and what it wrote."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(project.command("run"), cwd=project.root, env=project.env,
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    try:
        shown = read_terminal(controller, b"done? [y/N]", timeout=60)
        assert b"done? [y/N]" in shown, shown
        acted = time.monotonic()
        act(process, controller)
        code = process.wait(timeout=30)
        took = time.monotonic() - acted
        shown += read_terminal(controller, None, timeout=10)
    finally:
        stop(process)
        os.close(controller)
    return code, took, shown.decode(errors="replace")


def test_ctrl_c_at_the_done_prompt_stops_at_once_and_the_step_still_awaits(sqlite_project: Project) -> None:
    """Ctrl-C at `done? [y/N]` ends the run at once (130) and frees the lock; the step still awaits."""
    sqlite_project.write_task("20260101000001", "by_hand", "return 'Flip the switch'", options="manual=True")
    code, took, shown = at_the_prompt(sqlite_project, lambda process, _: process.send_signal(signal.SIGINT))
    print(f"\nexit 130 {took:.2f} s after SIGINT at the prompt")
    assert code == 130, shown
    assert took < 5
    assert "20260101000001_by_hand still awaits confirmation" in shown, shown
    assert states(sqlite_project) == {"by_hand": "awaiting"}
    assert sqlite_project.cli("run", "--if-busy", "fail", "--wait", "0", "--no-input").code == 0


def test_end_of_input_at_the_done_prompt_is_no(sqlite_project: Project) -> None:
    """Ctrl-D answers "no": the run ends as usual and says how to confirm later."""
    sqlite_project.write_task("20260101000001", "by_hand", "return 'Flip the switch'", options="manual=True")
    code, _, shown = at_the_prompt(sqlite_project, lambda _, controller: os.write(controller, b"\x04"))
    assert code == 0, shown
    assert "afterparty confirm 20260101000001" in shown, shown
    assert states(sqlite_project) == {"by_hand": "awaiting"}
